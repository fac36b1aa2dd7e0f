"""Uncertainty for the leaderboard: bootstrap intervals over seeds and queries, paired tests over queries.

Both take per-query main scores, one mapping {query id: score} per seed. Only queries present in
every seed (and, for a paired test, in both systems) count, so systems are compared on the same
queries.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

N_RESAMPLES = 2000
ALPHA = 0.05


@dataclass(frozen=True)
class Interval:
    mean: float
    low: float
    high: float


def _matrix(per_seed: list[dict[str, float]], query_ids: list[str] | None = None) -> np.ndarray:
    """seeds x queries, over the queries every seed scored."""
    if query_ids is None:
        query_ids = sorted(set.intersection(*(set(s) for s in per_seed)))
    return np.array([[scores[q] for q in query_ids] for scores in per_seed], dtype=np.float64)


def mean_score(per_seed: list[dict[str, float]]) -> float:
    return float(_matrix(per_seed).mean())


def bootstrap_interval(per_seed: list[dict[str, float]], n_resamples: int = N_RESAMPLES, seed: int = 0) -> Interval:
    """95% percentile interval of the mean, resampling seeds and queries (two-level bootstrap)."""
    scores = _matrix(per_seed)
    n_seeds, n_queries = scores.shape
    rng = np.random.default_rng(seed)
    means = np.empty(n_resamples)
    for i in range(n_resamples):
        rows = rng.integers(0, n_seeds, n_seeds)
        columns = rng.integers(0, n_queries, n_queries)
        means[i] = scores[np.ix_(rows, columns)].mean()
    low, high = np.quantile(means, [ALPHA / 2, 1 - ALPHA / 2])
    return Interval(float(scores.mean()), float(low), float(high))


def paired_permutation_p(
    system: list[dict[str, float]], reference: list[dict[str, float]], n_resamples: int = N_RESAMPLES, seed: int = 0
) -> float:
    """Two-sided p-value of a paired sign-flip permutation test on per-query scores averaged over seeds."""
    shared = sorted(set.intersection(*(set(s) for s in system + reference)))
    difference = _matrix(system, shared).mean(axis=0) - _matrix(reference, shared).mean(axis=0)
    observed = abs(difference.mean())
    rng = np.random.default_rng(seed)
    signs = rng.choice((-1.0, 1.0), size=(n_resamples, len(difference)))
    permuted = np.abs((signs * difference).mean(axis=1))
    return float((np.sum(permuted >= observed - 1e-12) + 1) / (n_resamples + 1))
