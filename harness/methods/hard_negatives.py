"""Hard negatives for (query, relevant document) training pairs: which documents, and how they are mined.

Two miners, chosen with `hard_negative_miner`:

* `bm25` (the default): the `hard_negatives` best BM25 documents below rank `hard_negative_skip`
  that are not relevant to the query (`bm25_negatives`);
* `dense`: sentence-transformers' own `util.mine_hard_negatives`, scoring the whole corpus with the
  base model being fine-tuned, before training. Its filters are exposed as config fields:
  `hard_negative_skip` (its `range_min`: best non-relevant candidates skipped, the guard against
  unjudged true positives), `hard_negative_range_max` (candidates considered; 0 = its default),
  `hard_negative_margin` / `hard_negative_relative_margin` (a candidate scoring within this margin of
  the query's weakest positive is dropped; < 0 = off), `hard_negative_sampling` (`top` or `random`
  among the candidates left) and `hard_negative_cross_encoder` (a local cross-encoder folder that
  rescores candidates before the margin filters; sentence-transformers uses it only when a margin is set).

Every relevant document of a query (all its positive train qrels, given as rows) is excluded by
sentence-transformers; the mined lists are then checked against the qrels again, so a document
judged relevant never becomes a negative of its query, whatever its text shares with others.
A query with fewer than `hard_negatives` negatives left gets no training rows.

`contrastive` and `lora` add the mined documents as extra columns of their (query, document) rows;
`heal` puts them into the query's batch as document rows, where its level-wise loss decides what
they are (a negative at the instance level, a positive at a label level they share).

All fields but the first two were added after results were stored (`added_later`): configs that
leave them at their defaults keep their hash.
"""

from __future__ import annotations

import random
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from harness.config_fields import added_later
from harness.errors import HarnessError
from harness.task import Task

MINERS = ("bm25", "dense")
SAMPLING = ("top", "random")
DENSE_ONLY = ("hard_negative_range_max", "hard_negative_margin", "hard_negative_relative_margin",
              "hard_negative_sampling", "hard_negative_cross_encoder")


@dataclass(frozen=True)
class HardNegativeFields:
    """Mined negatives per training pair; 0 = in-batch negatives only."""

    hard_negatives: int = 0  # negatives per pair, extra columns negative_1..n of the training rows
    hard_negative_skip: int = 0  # best non-relevant candidates skipped (dense: range_min)
    hard_negative_miner: str = added_later("bm25")  # bm25 | dense (the base model, before training)
    hard_negative_range_max: int = added_later(0)  # dense: candidates considered per query; 0 = sentence-transformers' default
    hard_negative_margin: float = added_later(-1.0)  # dense: drop candidates scoring above positive - margin; < 0 = off
    hard_negative_relative_margin: float = added_later(-1.0)  # dense: same, as a fraction of |positive score|; < 0 = off
    hard_negative_sampling: str = added_later("top")  # dense: top | random among the candidates left
    hard_negative_cross_encoder: str = added_later("")  # dense: local cross-encoder folder rescoring candidates; "" = none

    def check_hard_negatives(self) -> None:
        """One-line errors for settings that would mine nothing or silently do nothing."""
        if self.hard_negative_miner not in MINERS:
            raise HarnessError(f"hard_negative_miner must be one of {', '.join(MINERS)}, got {self.hard_negative_miner!r}")
        if self.hard_negative_sampling not in SAMPLING:
            raise HarnessError(f"hard_negative_sampling must be one of {', '.join(SAMPLING)}, got {self.hard_negative_sampling!r}")
        if self.hard_negatives < 0 or self.hard_negative_skip < 0:
            raise HarnessError("hard_negatives and hard_negative_skip must be >= 0")
        if self.hard_negative_miner == "dense" and self.hard_negatives == 0:
            raise HarnessError("hard_negative_miner = 'dense' mines nothing with hard_negatives = 0: set hard_negatives >= 1")
        if self.hard_negative_miner == "bm25":
            changed = [name for name in DENSE_ONLY if getattr(self, name) != type(self).__dataclass_fields__[name].default]
            if changed:
                raise HarnessError(f"{', '.join(changed)} only apply to hard_negative_miner = 'dense'")
        if self.hard_negative_range_max and self.hard_negative_range_max < self.hard_negative_skip + self.hard_negatives:
            raise HarnessError("hard_negative_range_max must leave hard_negatives candidates after hard_negative_skip")
        if self.hard_negative_cross_encoder and not Path(self.hard_negative_cross_encoder).expanduser().is_dir():
            raise HarnessError(f"hard_negative_cross_encoder {self.hard_negative_cross_encoder!r} is not a local folder")


def relevant_documents(task: Task, split: str = "train") -> dict[str, set[str]]:
    return {qid: {did for did, rel in docs.items() if rel > 0} for qid, docs in task.qrels[split].items()}


def bm25_negatives(task: Task, count: int, skip: int) -> dict[str, list[str]]:
    """query id -> the `count` best BM25 documents below rank `skip` that are not relevant to it."""
    from harness.methods.bm25 import BM25Config, BM25Searcher

    queries = task.split_queries("train")
    most_relevant = max(len(docs) for docs in task.qrels["train"].values())
    run = BM25Searcher(task, BM25Config(), show_progress=False).search(queries, skip + count + most_relevant)
    negatives = {}
    for qid, ranked in run.items():
        relevant = {d for d, rel in task.qrels["train"][qid].items() if rel > 0}
        order = sorted(ranked, key=lambda d: (-ranked[d], d))[skip:]  # ties by id, so mining is reproducible
        negatives[qid] = [d for d in order if d not in relevant][:count]
    return negatives


def training_negatives(task: Task, config, model=None, seed: int = 0, show_progress: bool = False) -> dict[str, list[str]]:
    """query id -> its mined negatives (none when `hard_negatives = 0`); the dense miner scores with `model`."""
    if not config.hard_negatives:
        return {}
    if config.hard_negative_miner == "dense":
        if model is None:
            raise ValueError("the dense miner needs the base model")
        return dense_negatives(task, config, model, seed, show_progress)
    return bm25_negatives(task, config.hard_negatives, config.hard_negative_skip)


@contextmanager
def progress_bars(model, show: bool):
    """sentence-transformers' miner encodes with `show_progress_bar=True` whatever `verbose` says:
    route its two encode calls through the model with the harness's own setting."""
    methods = ("encode_document", "encode_query")
    for name in methods:
        bound = getattr(model, name)
        setattr(model, name, lambda *args, _bound=bound, **kwargs: _bound(*args, **{**kwargs, "show_progress_bar": show}))
    try:
        yield
    finally:
        for name in methods:
            delattr(model, name)  # back to the class's method


def dense_negatives(task: Task, config, model, seed: int, show_progress: bool = False) -> dict[str, list[str]]:
    """query id -> `config.hard_negatives` document ids mined by `model` with sentence-transformers' filters.

    `config` has `HardNegativeFields` and the prefixes of `TrainConfig`. Queries left with too few
    negatives are absent.
    """
    from datasets import Dataset
    from sentence_transformers.util import mine_hard_negatives

    from harness.device import autocast

    relevant = relevant_documents(task)
    query_ids: dict[str, list[str]] = {}  # prefixed text -> ids (equal texts are one query to the miner)
    anchors, positives = [], []
    for qid, docs in relevant.items():
        anchor = config.query_prefix + task.queries[qid]
        query_ids.setdefault(anchor, []).append(qid)
        for did in sorted(docs):
            anchors.append(anchor)
            positives.append(config.document_prefix + task.corpus[did].full_text)
    doc_ids: dict[str, list[str]] = {}  # prefixed text -> ids (equal texts are one document to the miner)
    for did in sorted(task.corpus):
        doc_ids.setdefault(config.document_prefix + task.corpus[did].full_text, []).append(did)
    cross_encoder = None
    if config.hard_negative_cross_encoder:
        from sentence_transformers import CrossEncoder

        cross_encoder = CrossEncoder(str(Path(config.hard_negative_cross_encoder).expanduser()), device=str(model.device))
    prompt = model.prompts.get(model.default_prompt_name or "", "")  # what the harness's own encoding uses
    random.seed(seed)  # sampling = "random" draws from the global generator
    with autocast(config.precision, str(model.device)), progress_bars(model, show_progress):
        mined = mine_hard_negatives(
            Dataset.from_dict({"anchor": anchors, "positive": positives}),
            model,
            corpus=list(doc_ids),
            cross_encoder=cross_encoder,
            range_min=config.hard_negative_skip,
            range_max=config.hard_negative_range_max or None,
            absolute_margin=config.hard_negative_margin if config.hard_negative_margin >= 0 else None,
            relative_margin=config.hard_negative_relative_margin if config.hard_negative_relative_margin >= 0 else None,
            num_negatives=config.hard_negatives,
            sampling_strategy=config.hard_negative_sampling,
            query_prompt=prompt,
            corpus_prompt=prompt,
            output_format="n-tuple",
            batch_size=config.encode_batch_size,
            verbose=show_progress,
        )
    columns = [f"negative_{i + 1}" for i in range(config.hard_negatives)]
    negatives: dict[str, list[str]] = {}
    for row in mined:
        for qid in query_ids[row["anchor"]]:
            chosen = [doc_ids[row[column]] for column in columns]
            if not any(relevant[qid] & set(ids) for ids in chosen):  # the qrels, not only the given pairs
                negatives[qid] = [ids[0] for ids in chosen]
    return negatives
