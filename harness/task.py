"""A retrieval task: a BEIR folder (corpus, queries, qrels per split) plus a label path per document.

`load_task_folder` validates every line and raises `InputError("file:line: problem")` on the first
problem, so a bad folder never reaches a method or a result file. Refused: malformed JSON or UTF-8,
strings with lone surrogates, empty ids or ids containing whitespace (a TREC run file could not hold
them), unknown or duplicate ids, the same (query, document) pair judged twice in one qrels file, and
qrels scores that are not integers in QRELS_SCORE_RANGE.

A dev or test query whose judgments are all <= 0 has no relevant document and could only add a zero
to the mean: it is dropped from that split, with one warning naming the file and how many were dropped.
Train splits keep such queries (their judged documents are still usable negatives).
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from harness.errors import InputError

SPLITS = ("train", "dev", "test")
EVALUATION_SPLITS = ("dev", "test")
QRELS_HEADER = ("query-id", "corpus-id", "score")
# pytrec_eval keeps relevance in a C int: 4294967295 silently zeroes every query, 2**62 segfaults, 2**63 raises
QRELS_SCORE_RANGE = (-1000, 1000)


@dataclass(frozen=True)
class Document:
    title: str
    text: str
    labels: tuple[str, ...] = ()

    @property
    def full_text(self) -> str:
        """What an encoder sees: title and text joined as mteb and BEIR join them."""
        return f"{self.title} {self.text}".strip() if self.title else self.text.strip()


@dataclass(frozen=True)
class Task:
    name: str
    corpus: dict[str, Document]
    queries: dict[str, str]
    qrels: dict[str, dict[str, dict[str, int]]]  # split -> query id -> doc id -> relevance
    path: Path | None = None
    main_score: str = "ndcg_at_10"
    profile: str = "full"
    metadata: dict = field(default_factory=dict)

    def split_queries(self, split: str) -> dict[str, str]:
        return {qid: self.queries[qid] for qid in self.qrels.get(split, {})}

    def train_pairs(self, split: str = "train") -> list[tuple[str, str]]:
        """(query text, relevant document text) for every positive qrel of a split."""
        return [
            (self.queries[qid], self.corpus[did].full_text)
            for qid, docs in self.qrels.get(split, {}).items()
            for did, rel in docs.items()
            if rel > 0
        ]

    @property
    def label_paths(self) -> dict[str, tuple[str, ...]]:
        return {did: doc.labels for did, doc in self.corpus.items() if doc.labels}


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """Non-blank lines with their 1-based numbers; bytes that are not UTF-8 are an error."""
    if not path.is_file():
        raise InputError(path, None, "file not found")
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise InputError(path, number, f"not valid UTF-8 ({exc.reason} at byte {exc.start})") from None
            if line.strip():
                yield number, line.rstrip("\r\n")


def _json_records(path: Path) -> Iterator[tuple[int, dict]]:
    for number, line in _lines(path):
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(path, number, f"malformed JSON ({exc.msg} at column {exc.colno})") from None
        if not isinstance(record, dict):
            raise InputError(path, number, "each line must be a JSON object")
        yield number, record


def _string_field(path: Path, number: int, record: dict, key: str, required: bool = True) -> str:
    value = record.get(key)
    if value is None:
        if required:
            raise InputError(path, number, f"missing `{key}`")
        return ""
    if not isinstance(value, (str, int)) or isinstance(value, bool):
        raise InputError(path, number, f"`{key}` must be a string")
    return _encodable(path, number, key, str(value))


def _encodable(path: Path, number: int, key: str, value: str) -> str:
    """JSON `\\ud800` escapes decode to lone surrogates that crash later, when the text is encoded."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        problem = f"`{key}` is not encodable as UTF-8 (lone surrogate {value[exc.start]!r} at character {exc.start})"
        raise InputError(path, number, problem) from None
    return value


def _checked_id(path: Path, number: int, kind: str, value: str) -> str:
    """TREC run files separate columns by whitespace, so an id with whitespace could not be read back."""
    if not value:
        raise InputError(path, number, f"empty {kind} id")
    if any(character.isspace() for character in value):
        raise InputError(path, number, f"{kind} id {value!r} contains whitespace")
    return value


def read_corpus(path: Path, label_depth: int | None = None) -> dict[str, Document]:
    corpus: dict[str, Document] = {}
    for number, record in _json_records(path):
        doc_id = _checked_id(path, number, "document", _string_field(path, number, record, "_id"))
        if doc_id in corpus:
            raise InputError(path, number, f"duplicate document id {doc_id!r}")
        labels = record.get("labels", [])
        if not isinstance(labels, list) or not all(isinstance(x, str) and x for x in labels):
            raise InputError(path, number, "`labels` must be a list of non-empty strings (root to leaf)")
        for label in labels:
            _encodable(path, number, "labels", label)
        if label_depth and labels and len(labels) != label_depth:
            raise InputError(path, number, f"label path of {doc_id!r} has depth {len(labels)}, the task fixes {label_depth}")
        text = _string_field(path, number, record, "text")
        title = _string_field(path, number, record, "title", required=False)
        if not (title + text).strip():
            raise InputError(path, number, f"document {doc_id!r} has no text")
        corpus[doc_id] = Document(title=title, text=text, labels=tuple(labels))
    if not corpus:
        raise InputError(path, None, "empty corpus")
    return corpus


def _read_queries(path: Path) -> dict[str, str]:
    queries: dict[str, str] = {}
    for number, record in _json_records(path):
        query_id = _checked_id(path, number, "query", _string_field(path, number, record, "_id"))
        if query_id in queries:
            raise InputError(path, number, f"duplicate query id {query_id!r}")
        text = _string_field(path, number, record, "text")
        if not text.strip():
            raise InputError(path, number, f"query {query_id!r} has no text")
        queries[query_id] = text
    if not queries:
        raise InputError(path, None, "no queries")
    return queries


def _relevance(path: Path, number: int, score: str) -> int:
    try:
        relevance = int(score)
    except ValueError:
        raise InputError(path, number, f"score {score!r} is not an integer") from None
    low, high = QRELS_SCORE_RANGE
    if not low <= relevance <= high:
        raise InputError(path, number, f"score {relevance} is outside {low}..{high} (pytrec_eval keeps relevance in a C int)")
    return relevance


def _read_qrels(path: Path, queries: dict[str, str], corpus: dict[str, Document]) -> dict[str, dict[str, int]]:
    qrels: dict[str, dict[str, int]] = {}
    first_line: dict[tuple[str, str], int] = {}
    rows = _lines(path)
    first = next(rows, None)
    if first is None:
        raise InputError(path, None, "empty qrels file")
    number, header = first
    if tuple(c.strip() for c in header.split("\t")) != QRELS_HEADER:
        raise InputError(path, number, f"first line must be the header {'<TAB>'.join(QRELS_HEADER)!r}, got {header[:60]!r}")
    for number, line in rows:
        cells = line.split("\t")
        if len(cells) != 3:
            raise InputError(path, number, f"expected 3 tab-separated columns, got {len(cells)}")
        query_id, doc_id, score = (c.strip() for c in cells)
        query_id = _checked_id(path, number, "query", query_id)
        doc_id = _checked_id(path, number, "document", doc_id)
        relevance = _relevance(path, number, score)
        if query_id not in queries:
            raise InputError(path, number, f"unknown query id {query_id!r} (not in queries.jsonl)")
        if doc_id not in corpus:
            raise InputError(path, number, f"unknown document id {doc_id!r} (not in corpus.jsonl)")
        if (query_id, doc_id) in first_line:
            earlier = first_line[query_id, doc_id]
            raise InputError(path, number, f"query {query_id!r} judges document {doc_id!r} twice, first at line {earlier}")
        first_line[query_id, doc_id] = number
        qrels.setdefault(query_id, {})[doc_id] = relevance
    if not any(rel > 0 for docs in qrels.values() for rel in docs.values()):
        raise InputError(path, None, "split has no relevant (score > 0) pairs")
    return qrels


def _without_queries_lacking_a_relevant_document(path: Path, qrels: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
    """Such a query scores 0 under every metric whatever the method does, so it only dilutes the mean."""
    kept = {qid: docs for qid, docs in qrels.items() if any(rel > 0 for rel in docs.values())}
    if dropped := len(qrels) - len(kept):
        warnings.warn(f"{path}: dropped {dropped} queries with no relevant (score > 0) document", stacklevel=3)
    return kept


def load_task_folder(
    path: Path,
    name: str | None = None,
    main_score: str = "ndcg_at_10",
    label_depth: int | None = None,
    metadata: dict | None = None,
) -> Task:
    """Load and validate a BEIR folder. `test` qrels are required; `train` and `dev` are optional."""
    path = Path(path)
    if not path.is_dir():
        raise InputError(path, None, "task folder not found")
    corpus = read_corpus(path / "corpus.jsonl", label_depth)
    queries = _read_queries(path / "queries.jsonl")
    qrels = {}
    for split in SPLITS:
        file = path / "qrels" / f"{split}.tsv"
        if file.exists() or split == "test":
            judged = _read_qrels(file, queries, corpus)
            qrels[split] = _without_queries_lacking_a_relevant_document(file, judged) if split in EVALUATION_SPLITS else judged
    return Task(
        name=name or path.name,
        corpus=corpus,
        queries=queries,
        qrels=qrels,
        path=path,
        main_score=main_score,
        metadata=dict(metadata or {}),
    )
