"""Synthetic queries for a bare corpus: a causal LM writes queries per document, a round trip keeps the good ones.
(Over 300 lines on purpose: one pipeline - prompt, generate, filter, deal to splits, write - that reads top to bottom.)

`make_queries(task_dir, generate, settings, out_dir)` turns a folder with a `corpus.jsonl` into a task:

* a corpus without queries gets `queries.jsonl` and `qrels/<split>.tsv` for every split in
  `settings.splits` beside it (documents, not queries, are dealt to splits, so no document has queries
  in two splits);
* a task with human queries is never touched: the synthetic splits go into a new task folder `out_dir`
  with a copy of the corpus and the human qrels of every split not generated, so `run --task-dir
  OUT_DIR` trains on synthetic queries and tests on the human ones.

Every generated text is cached in `synthetic_generations.jsonl` in the output folder, keyed by document,
variant, generator fingerprint and prompt hash (`harness.rag_generation.generate_cached`, the cache of
generated answers), so a rerun or an interrupted run generates only what is missing. Queries are then
cleaned (first line, no "Query:" label or quotes), dropped when outside `min_words..max_words`, when an
exact duplicate after lower-casing and collapsing white space (of a kept synthetic or of a human query),
or when the round trip fails: their source document is not in the top `top_k` of `filter` (`bm25` or
`frozen`, resolved through the method registry) searching the whole corpus (InPars, Promptagator).

`synthetic_info.json` in the output folder records which splits are synthetic, the generator, the
filter and the counts per split; `synthetic_metadata(folder)` reads it back for the task's metadata.
"""

from __future__ import annotations

import json
import re
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from harness import atomic
from harness.errors import HarnessError
from harness.task import QRELS_HEADER, SPLITS, Document, Task, read_corpus, load_task_folder

INFO_FILE = "synthetic_info.json"
CACHE_FILE = "synthetic_generations.jsonl"
FILTERS = ("bm25", "frozen", "none")
DROP_REASONS = ("empty", "too_short", "too_long", "duplicate", "round_trip")
SPLIT_SHARES = {"train": 0.8, "dev": 0.1, "test": 0.1}  # of the documents, when one folder gets several splits
# The instruction after the document: SmolLM2-135M then writes a question about it far more often than
# chatter (8 cyber documents tried; a query-first or few-shot prompt made it copy the document).
PROMPT_TEMPLATE = (
    "{document}\n\nWrite one question, of at most 15 words, that the text above answers. "
    "Reply with the question only."
)
_LABEL = re.compile(r"^\s*(?:search\s+)?query\s*\d*\s*[:\-]\s*", re.IGNORECASE)
Generate = Callable[[list[str]], list[str]]


@dataclass(frozen=True)
class QuerySettings:
    per_doc: int = 3  # generations per document (seeded sampling makes them differ)
    splits: tuple[str, ...] | None = None  # None: train,dev,test for a bare corpus, train beside human queries
    seed: int = 0  # picks --max-docs documents and deals documents to splits; the generator has its own
    batch_size: int = 8
    filter: str = "bm25"  # bm25 | frozen | none
    top_k: int = 3  # round trip: the source document must be in this many best documents
    max_docs: int | None = None  # the first M documents in seeded order; None = all
    min_words: int = 3
    max_words: int = 24
    max_doc_chars: int = 1000  # of a document's text in the prompt, so a small LM's window holds it
    prompt_template: str = PROMPT_TEMPLATE  # field: {document}
    device: str = "cpu"  # for the `frozen` filter


@dataclass(frozen=True)
class SyntheticQuery:
    """A cached generation (the record type of `generate_cached`: key fields, then `text`)."""

    doc_id: str
    variant: int
    generator: str
    prompt_sha256: str
    text: str


@dataclass
class SplitCounts:
    generated: int = 0
    kept: int = 0
    dropped: dict[str, int] = field(default_factory=lambda: dict.fromkeys(DROP_REASONS, 0))


def make_queries(task_dir: Path, generate: Generate, settings: QuerySettings = QuerySettings(),
                 out_dir: Path | None = None) -> dict:
    """Write synthetic queries and qrels (see the module docstring); returns the `synthetic` metadata block."""
    from harness.generation import generate_cached, generator_fingerprint, prompt_sha256

    source, out = Path(task_dir), Path(out_dir or task_dir)
    fingerprint = generator_fingerprint(generate, None, "make_queries")
    corpus = read_corpus(source / "corpus.jsonl")
    human = _human_task(source, out)
    splits = _splits(settings, human)
    kept_human = [s for s in (human.qrels if human else {}) if s not in splits]
    if "test" not in splits and "test" not in kept_human:
        raise HarnessError(f"{source} has no human queries, so --splits must include test (got {','.join(splits)})")
    _check_output_folder(out, source)

    doc_ids = _seeded_order(corpus, settings.seed)[: settings.max_docs]
    split_of = deal_documents(doc_ids, splits, settings.seed)
    requests = []
    for doc_id in doc_ids:
        prompt = build_query_prompt(corpus[doc_id], settings)
        requests += [((doc_id, v, fingerprint, prompt_sha256(prompt)), prompt) for v in range(settings.per_doc)]
    records = generate_cached(requests, generate, out / CACHE_FILE, SyntheticQuery, settings.batch_size)

    human_ids = set(human.queries) if human else set()
    human_texts = {normalise(t) for t in human.queries.values()} if human else set()
    candidates = {f"syn-{r.doc_id}-{r.variant}": r for r in (records[key] for key, _ in requests)}
    if clash := sorted(human_ids & set(candidates)):
        raise HarnessError(f"synthetic query id {clash[0]!r} is already a human query id in {source}")
    kept, counts = filter_queries(candidates, corpus, split_of, human_texts, settings)

    info = {
        "splits": list(splits),
        "human_splits": kept_human,
        "source": source.resolve().name,
        "generator": fingerprint,
        "prompt_template": settings.prompt_template,
        "per_doc": settings.per_doc,
        "seed": settings.seed,
        "max_docs": settings.max_docs,
        "filter": {"method": settings.filter, "top_k": settings.top_k, "min_words": settings.min_words,
                   "max_words": settings.max_words, "dedup": "exact, lower-cased, white space collapsed"},
        "counts": {split: asdict(c) for split, c in counts.items()},
    }
    for split in splits:
        if not counts[split].kept:
            raise HarnessError(f"no synthetic {split} query survived the filters ({_dropped_text(counts[split])}); "
                               "raise --per-doc or --top-k, or use --filter none")
    _write_task(out, source, corpus, human, kept_human, kept, info)
    load_task_folder(out)  # what `run --task-dir` will read: fail here, not there
    return info


def _human_task(source: Path, out: Path) -> Task | None:
    """The source's human queries, or None for a bare corpus (or a folder make-queries itself filled)."""
    if not (source / "queries.jsonl").exists():
        return None
    if source.resolve() == out.resolve():
        if (source / INFO_FILE).exists() and not _read_info(source).get("human_splits"):
            return None  # our own earlier output: regenerate it (from the cache)
        raise HarnessError(f"{source} already has queries.jsonl: pass --out-dir DIR2 to write a task that trains "
                           "on synthetic queries and keeps these human ones for testing")
    return load_task_folder(source)


def _splits(settings: QuerySettings, human: Task | None) -> tuple[str, ...]:
    splits = settings.splits or (("train",) if human else SPLITS)
    unknown = sorted(set(splits) - set(SPLITS))
    if unknown or not splits:
        raise HarnessError(f"--splits must be among {','.join(SPLITS)}, got {','.join(splits) or 'nothing'}")
    return tuple(s for s in SPLITS if s in splits)


def _check_output_folder(out: Path, source: Path) -> None:
    """Never write into a folder of someone else's: a new one, the source, or an earlier make-queries output
    (finished, with its info file, or interrupted, with only its generation cache: then it resumes)."""
    if out.resolve() == source.resolve() or not out.exists() or not any(out.iterdir()):
        return
    if (out / INFO_FILE).exists() or {p.name for p in out.iterdir()} <= {CACHE_FILE}:
        return
    raise HarnessError(f"{out} exists and was not written by make-queries: choose a new --out-dir")


def _seeded_order(corpus: dict[str, Document], seed: int) -> list[str]:
    from harness.builders.common import seeded_order

    return seeded_order(corpus, seed)


def deal_documents(doc_ids: list[str], splits: tuple[str, ...], seed: int) -> dict[str, str]:
    """document id -> split: shares as SPLIT_SHARES (renormalised), at least one document per split,
    train (or else the last split) taking the rest."""
    if len(doc_ids) < len(splits):
        raise HarnessError(f"{len(doc_ids)} documents cannot fill {len(splits)} splits")
    total = sum(SPLIT_SHARES[s] for s in splits)
    rest = "train" if "train" in splits else splits[-1]
    sizes = {s: max(1, round(len(doc_ids) * SPLIT_SHARES[s] / total)) for s in splits if s != rest}
    sizes[rest] = len(doc_ids) - sum(sizes.values())
    if sizes[rest] < 1:
        raise HarnessError(f"{len(doc_ids)} documents are too few for splits {','.join(splits)}")
    split_of, start = {}, 0
    for split in splits:
        for doc_id in doc_ids[start : start + sizes[split]]:
            split_of[doc_id] = split
        start += sizes[split]
    return split_of


def build_query_prompt(document: Document, settings: QuerySettings) -> str:
    return settings.prompt_template.format(document=document.full_text[: settings.max_doc_chars])


def clean_query(text: str) -> str:
    """The first non-empty line, without a `Query:` label, surrounding quotes or extra white space."""
    line = next((line for line in text.splitlines() if line.strip()), "")
    line = _LABEL.sub("", line).strip().strip("\"'`").strip()
    return " ".join(line.split())


def normalise(text: str) -> str:
    return " ".join(text.lower().split())


def filter_queries(candidates: dict[str, SyntheticQuery], corpus: dict[str, Document], split_of: dict[str, str],
                   human_texts: set[str], settings: QuerySettings) -> tuple[dict[str, tuple[str, str, str]], dict[str, SplitCounts]]:
    """query id -> (split, text, source document) for the queries that pass, and the counts per split.

    Filters run in the order of DROP_REASONS; a query is counted under the first one that drops it.
    """
    counts = {split: SplitCounts() for split in dict.fromkeys(split_of.values())}
    seen, survivors = set(human_texts), {}
    for qid, record in candidates.items():
        split, text = split_of[record.doc_id], clean_query(record.text)
        counts[split].generated += 1
        words = len(text.split())
        reason = ("empty" if not words else "too_short" if words < settings.min_words
                  else "too_long" if words > settings.max_words else "duplicate" if normalise(text) in seen else None)
        if reason:
            counts[split].dropped[reason] += 1
            continue
        seen.add(normalise(text))
        survivors[qid] = (split, text, record.doc_id)
    passed = round_trip(survivors, corpus, settings)
    for qid, (split, _, _) in survivors.items():
        if qid in passed:
            counts[split].kept += 1
        else:
            counts[split].dropped["round_trip"] += 1
    return {qid: row for qid, row in survivors.items() if qid in passed}, counts


def round_trip(queries: dict[str, tuple[str, str, str]], corpus: dict[str, Document], settings: QuerySettings) -> set[str]:
    """The ids of queries whose source document is among the top_k that `settings.filter` retrieves for them."""
    if settings.filter == "none" or not queries:
        return set(queries)
    if settings.filter not in FILTERS:
        raise HarnessError(f"--filter must be one of {', '.join(FILTERS)}, got {settings.filter!r}")
    run = retrieve_top_k(settings.filter, corpus, {qid: text for qid, (_, text, _) in queries.items()},
                         settings.top_k, settings.device)
    return {qid for qid, (_, _, doc_id) in queries.items() if doc_id in run.get(qid, {})}


def retrieve_top_k(method_name: str, corpus: dict[str, Document], queries: dict[str, str], k: int, device: str):
    """A method's default config fitted on the corpus (no training split needed), then its top-k run."""
    from harness.methods import METHODS
    from harness.methods.base import FitContext
    from harness.search import exact_search

    method = METHODS.get(method_name)
    task = Task(name="round-trip", corpus=corpus, queries=queries, qrels={})
    with tempfile.TemporaryDirectory() as scratch:
        context = FitContext(run_dir=Path(scratch), seed=0, device=device, show_progress=False)
        retriever = method().fit(task, method.Config(), context).retriever
        k = min(k, len(corpus))
        if hasattr(retriever, "search"):
            return retriever.search(queries, k)
        doc_ids, query_ids = list(corpus), list(queries)
        doc_vectors = retriever.encode([corpus[d].full_text for d in doc_ids], "document")
        query_vectors = retriever.encode([queries[q] for q in query_ids], "query")
        return exact_search(query_ids, query_vectors, doc_ids, doc_vectors, k)


def _write_task(out: Path, source: Path, corpus, human: Task | None, kept_human: list[str],
                kept: dict[str, tuple[str, str, str]], info: dict) -> None:
    """The marker first (so a crash leaves a folder make-queries will redo), then queries, qrels and corpus."""
    atomic.write_text(out / INFO_FILE, json.dumps({"synthetic": info}, indent=2, ensure_ascii=False) + "\n")
    if out.resolve() != source.resolve():
        atomic.write_bytes(out / "corpus.jsonl", (source / "corpus.jsonl").read_bytes())
    human_ids = {qid for split in kept_human for qid in human.qrels[split]} if human else set()
    rows = [{"_id": qid, "text": text} for qid, text in (human.queries.items() if human else ()) if qid in human_ids]
    rows += [{"_id": qid, "text": text} for qid, (_, text, _) in kept.items()]
    atomic.write_text(out / "queries.jsonl", "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    qrels = {split: human.qrels[split] for split in kept_human}
    for qid, (split, _, doc_id) in kept.items():
        qrels.setdefault(split, {})[qid] = {doc_id: 1}
    for split in SPLITS:
        path = out / "qrels" / f"{split}.tsv"
        if split not in qrels:
            path.unlink(missing_ok=True)  # an earlier run's split that this run does not write
            continue
        lines = ["\t".join(QRELS_HEADER)] + [f"{q}\t{d}\t{r}" for q, docs in qrels[split].items() for d, r in docs.items()]
        atomic.write_text(path, "\n".join(lines) + "\n")


def _read_info(folder: Path) -> dict:
    try:
        return json.loads((folder / INFO_FILE).read_text(encoding="utf-8"))["synthetic"]
    except (ValueError, KeyError, TypeError) as exc:
        raise HarnessError(f"{folder / INFO_FILE} is not a make-queries record ({exc})") from None


def synthetic_metadata(folder: Path) -> dict:
    """`{"synthetic": {...}}` for a folder written by make-queries, else `{}`: merge it into the task's metadata."""
    return {"synthetic": _read_info(Path(folder))} if (Path(folder) / INFO_FILE).exists() else {}


def _dropped_text(counts: SplitCounts) -> str:
    return ", ".join(f"{reason} {n}" for reason, n in counts.dropped.items() if n) or "none dropped"


def summary_line(info: dict, out: Path) -> str:
    counts = [SplitCounts(c["generated"], c["kept"], c["dropped"]) for c in info["counts"].values()]
    total = SplitCounts(sum(c.generated for c in counts), sum(c.kept for c in counts),
                        {r: sum(c.dropped[r] for c in counts) for r in DROP_REASONS})
    per_split = ", ".join(f"{split} {c['kept']}" for split, c in info["counts"].items())
    human = f"; human {','.join(info['human_splits'])} kept" if info["human_splits"] else ""
    return (f"make-queries: generated {total.generated}, kept {total.kept}, dropped {total.generated - total.kept} "
            f"({_dropped_text(total)}) -> {out} ({per_split}{human})")


def load_generator(spec: str, device: str, seed: int, max_new_tokens: int = 48, temperature: float = 0.7):
    """A seeded sampling generator over a packaged causal-LM alias or a local folder (chat template, left padding)."""
    from harness.llm import causal_lm_dir, load_causal_lm
    from harness.generation import Sampling, causal_lm_generator

    model, tokenizer = load_causal_lm(spec, device)
    sampling = Sampling(temperature=temperature, top_p=0.95, seed=seed)
    # the folder's name (e.g. smollm2-<version>), not its path: cache keys and metadata stay portable
    return causal_lm_generator(model, tokenizer, max_new_tokens, name=causal_lm_dir(spec).name, sampling=sampling)
