"""Retrieval metrics with pytrec_eval under mteb's names; identical query/doc ids are not ignored.

Per query: ndcg_at_k, map_at_k, recall_at_k, precision_at_k and hit_rate_at_k come from
pytrec_eval's ndcg_cut, map_cut, recall, P and success, exactly the measures mteb asks for;
mrr_at_k is computed as mteb does (rank order: score, then doc id, both descending).
A query with no retrieved documents scores 0 instead of being dropped.
"""

from __future__ import annotations

import pytrec_eval

K_VALUES = (1, 3, 5, 10, 100)
_PYTREC = {"ndcg_cut": "ndcg_at", "map_cut": "map_at", "recall": "recall_at", "P": "precision_at", "success": "hit_rate_at"}


def _mrr_at(relevant: set[str], ranked: dict[str, float], k_values: tuple[int, ...]) -> dict[str, float]:
    order = [d for d, _ in sorted(ranked.items(), key=lambda item: (item[1], item[0]), reverse=True)]
    first = next((rank for rank, d in enumerate(order, start=1) if d in relevant), None)
    return {f"mrr_at_{k}": (1.0 / first if first is not None and first <= k else 0.0) for k in k_values}


def per_query_scores(
    qrels: dict[str, dict[str, int]],
    run: dict[str, dict[str, float]],
    k_values: tuple[int, ...] = K_VALUES,
) -> dict[str, dict[str, float]]:
    """Every metric for every query of `qrels`."""
    measures = {f"{m}.{','.join(map(str, k_values))}" for m in _PYTREC}
    evaluated = pytrec_eval.RelevanceEvaluator(qrels, measures).evaluate(run)
    names = [f"{name}_{k}" for name in _PYTREC.values() for k in k_values] + [f"mrr_at_{k}" for k in k_values]
    scores = {}
    for qid, judged in qrels.items():
        row = dict.fromkeys(names, 0.0)
        if qid in evaluated:
            for measure, name in _PYTREC.items():
                for k in k_values:
                    row[f"{name}_{k}"] = evaluated[qid][f"{measure}_{k}"]
            relevant = {d for d, rel in judged.items() if rel > 0}
            row.update(_mrr_at(relevant, run[qid], k_values))
        scores[qid] = row
    return scores


def mean_scores(per_query: dict[str, dict[str, float]]) -> dict[str, float]:
    if not per_query:
        return {}
    names = next(iter(per_query.values()))
    return {name: sum(row[name] for row in per_query.values()) / len(per_query) for name in names}


def retrieval_scores(qrels, run, k_values: tuple[int, ...] = K_VALUES) -> dict[str, float]:
    return mean_scores(per_query_scores(qrels, run, k_values))


def family_scores(evaluation) -> dict[str, float]:
    return mean_scores(evaluation.per_query)
