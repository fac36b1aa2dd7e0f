"""RAG hallucination proxies computed from the retrieval run alone: deterministic, no model.

The top-k contexts of a query are its run entries ranked as pytrec_eval ranks them (score, then
document id, both descending). Every query of the split's qrels counts; a query missing from the
run has no contexts. Names (`k` from `k_values`, `l` = label level, 1 = root):

- `gold_context_hit_rate_at_{k}`: share of queries with at least one relevant (score > 0) document
  among the top-k contexts; equal to `hit_rate_at_{k}` by construction, named for the RAG table.
- `context_precision_at_{k}`: RAGAS context precision on ids, sum over ranks i <= k of
  precision@i * rel_i, divided by the number of relevant contexts in the top k; 0 for a query
  with none there.
- `wrong_branch_rate_l{l}_at_{k}`: per query, the share of its labelled top-k contexts that leave
  every gold branch at level l, averaged over queries. A context leaves gold document g's branch at
  level l when their label paths differ within the first min(l, depth of context, depth of g)
  levels, so a parent or child of g stays on its branch; with several gold documents (all relevant
  labelled ones), a context on any of their branches is on-branch. Such contexts are the false
  positives most likely to mislead a generator. Queries without a labelled gold document or
  without a labelled context in the top k are left out; the family is absent when the task has no
  labels.
- `wrong_branch_rate_l{l}_at_{k}_on_miss`: the same, over the queries whose top k holds no relevant
  document, where the generator sees distractors only; absent when none of the queries counted misses.
"""

from __future__ import annotations

from harness.search import Run
from harness.task import Task

K_VALUES = (1, 3, 5, 10)
LabelPath = tuple[str, ...]


def ranked_ids(scores: dict[str, float], k: int) -> list[str]:
    """The top-k document ids of one query, in pytrec_eval's rank order."""
    return [d for d, _ in sorted(scores.items(), key=lambda item: (item[1], item[0]), reverse=True)[:k]]


def context_precision(contexts: list[str], relevant: set[str]) -> float:
    hits, total = 0, 0.0
    for rank, doc_id in enumerate(contexts, start=1):
        if doc_id in relevant:
            hits += 1
            total += hits / rank
    return total / hits if hits else 0.0


def leaves_branch(context: LabelPath, gold: LabelPath, level: int) -> bool:
    depth = min(level, len(context), len(gold))
    return context[:depth] != gold[:depth]


def wrong_branch_rate(context_paths: list[LabelPath], gold_paths: list[LabelPath], level: int) -> float:
    """Share of contexts (all labelled) that leave the branch of every gold path at `level`."""
    off = sum(all(leaves_branch(c, g, level) for g in gold_paths) for c in context_paths)
    return off / len(context_paths)


def _query_outcomes(task: Task, split: str, run: Run, k: int):
    """Per query of the split's qrels: (query id, hit in the top k, context precision, {level: wrong-branch rate}
    or None when the query has no labelled gold document or no labelled context)."""
    paths = task.label_paths
    levels = range(1, max((len(p) for p in paths.values()), default=0) + 1)
    for qid, judged in task.qrels.get(split, {}).items():
        relevant = {d for d, rel in judged.items() if rel > 0}
        contexts = ranked_ids(run.get(qid, {}), k)
        gold_paths = [paths[d] for d in relevant if d in paths]
        context_paths = [paths[d] for d in contexts if d in paths]
        rates = {level: wrong_branch_rate(context_paths, gold_paths, level) for level in levels} if gold_paths and context_paths else None
        yield qid, any(d in relevant for d in contexts), context_precision(contexts, relevant), rates


def rag_scores(task: Task, split: str, run: Run, k_values=K_VALUES) -> dict[str, float]:
    scores = {}
    for k in k_values:
        hits, precisions = [], []
        wrong: dict[int, list[float]] = {}
        wrong_on_miss: dict[int, list[float]] = {}
        for _, hit, precision, rates in _query_outcomes(task, split, run, k):
            hits.append(float(hit))
            precisions.append(precision)
            for level, rate in (rates or {}).items():
                wrong.setdefault(level, []).append(rate)
                if not hit:
                    wrong_on_miss.setdefault(level, []).append(rate)
        if not hits:
            return {}
        scores[f"gold_context_hit_rate_at_{k}"] = _mean(hits)
        scores[f"context_precision_at_{k}"] = _mean(precisions)
        for level in sorted(wrong):
            scores[f"wrong_branch_rate_l{level}_at_{k}"] = _mean(wrong[level])
            if level in wrong_on_miss:
                scores[f"wrong_branch_rate_l{level}_at_{k}_on_miss"] = _mean(wrong_on_miss[level])
    return scores


# The headline branch columns (`wrong_branch_rate_l{1,2}_at_5_on_miss`): the ones kept per query and tested, so that
# Holm over the table (its floor is tests x 1e-4, `stats.PAIRED_RESAMPLES`) does not make every test hopeless.
BRANCH_TEST_K = 5
BRANCH_TEST_LEVELS = (1, 2)


def branch_outcomes(task: Task, split: str, run: Run, k: int = BRANCH_TEST_K,
                    levels: tuple[int, ...] = BRANCH_TEST_LEVELS) -> dict[str, dict[str, float]]:
    """`wrong_branch_rate_l{l}_at_{k}_on_miss` per query, for the queries that metric averages over (those whose
    top k misses every relevant document): the per-query values the leaderboard's paired branch test needs.
    A row's mean over its own queries is the metric; the test pairs the queries both rows missed."""
    outcomes: dict[str, dict[str, float]] = {}
    for qid, hit, _, rates in _query_outcomes(task, split, run, k):
        for level, rate in ({} if hit else rates or {}).items():
            if level in levels:
                outcomes.setdefault(f"wrong_branch_rate_l{level}_at_{k}_on_miss", {})[qid] = rate
    return dict(sorted(outcomes.items()))


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def family_scores(evaluation) -> dict[str, float]:
    return rag_scores(evaluation.task, evaluation.split, evaluation.run)
