"""Shared pieces of the task builders: text hygiene, stable ids, seeded splits, the BEIR writer."""

from __future__ import annotations

import hashlib
import html
import json
import re
from pathlib import Path
from typing import Iterable

from harness.errors import HarnessError

_CITATION = re.compile(r"\(Citation:[^)]*\)")
_MARKDOWN_LINK = re.compile(r"\[([^\]]*)\]\([^)]*\)")
_HTML_TAG = re.compile(r"</?[a-zA-Z][^>]*>")
_WHITESPACE = re.compile(r"\s+")


def clean_text(text: str) -> str:
    """Strip citation markers, markdown links (keeping their text) and HTML tags; normalise whitespace."""
    text = _CITATION.sub("", text)
    text = _MARKDOWN_LINK.sub(r"\1", text)
    text = _HTML_TAG.sub("", html.unescape(text))
    text = _WHITESPACE.sub(" ", text).strip()
    return re.sub(r"\s+([.,;:])", r"\1", text)


def stable_id(prefix: str, text: str) -> str:
    return f"{prefix}{hashlib.sha1(text.encode('utf-8')).hexdigest()[:12]}"


def seeded_order(ids: Iterable[str], seed: int) -> list[str]:
    """A shuffle that depends only on the ids and the seed (not on Python's or numpy's RNG version)."""
    return sorted(ids, key=lambda i: hashlib.sha256(f"{seed}:{i}".encode("utf-8")).hexdigest())


def split_ids(ids: Iterable[str], seed: int, n_dev: int, n_test: int) -> dict[str, list[str]]:
    """Test first, then dev, the rest train: each id lands in exactly one split."""
    order = seeded_order(ids, seed)
    if len(order) < n_dev + n_test + 1:
        raise HarnessError(f"only {len(order)} queries: too few for dev={n_dev} and test={n_test} plus a train split")
    return {
        "test": sorted(order[:n_test]),
        "dev": sorted(order[n_test : n_test + n_dev]),
        "train": sorted(order[n_test + n_dev :]),
    }


def _jsonl(records: Iterable[dict]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)


def write_beir_folder(
    out: Path,
    corpus: Iterable[dict],
    queries: dict[str, str],
    qrels: dict[str, dict[str, dict[str, int]]],
) -> None:
    """Write corpus.jsonl, queries.jsonl and qrels/<split>.tsv (with header), sorted for byte-identical rebuilds."""
    rows = sorted(corpus, key=lambda r: r["_id"])
    (out / "qrels").mkdir(parents=True, exist_ok=True)
    (out / "corpus.jsonl").write_text(_jsonl(rows), encoding="utf-8")
    (out / "queries.jsonl").write_text(
        _jsonl({"_id": qid, "text": queries[qid]} for qid in sorted(queries)), encoding="utf-8"
    )
    for split, pairs in qrels.items():
        lines = ["query-id\tcorpus-id\tscore"]
        lines += [f"{q}\t{d}\t{s}" for q in sorted(pairs) for d, s in sorted(pairs[q].items())]
        (out / "qrels" / f"{split}.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")


def write_split_task(
    out: Path,
    corpus: Iterable[dict],
    queries: dict[str, str],
    relevant: dict[str, dict[str, int]],
    seed: int,
    n_dev: int,
    n_test: int,
) -> None:
    """Split the queries by seed (each query, hence each distinct text, in one split) and write the folder."""
    splits = split_ids(queries, seed, n_dev=n_dev, n_test=n_test)
    qrels = {split: {qid: relevant[qid] for qid in ids} for split, ids in splits.items()}
    write_beir_folder(out, corpus, queries, qrels)


def file_checksums(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != "build_info.json"
    }
