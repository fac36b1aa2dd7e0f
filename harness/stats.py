"""Uncertainty for the leaderboard: bootstrap intervals and paired tests, both over seeds and queries.

Both take per-query main scores, one mapping {query id: score} per seed. Only queries present in
every seed (and, for a paired test, in both systems) count, so systems are compared on the same
queries. Resampling the seeds as well as the queries makes training-seed variance part of the
uncertainty: a difference that one lucky seed produces is not significant. `welch_p` tests metrics
that have no per-query values over their per-seed values instead. `holm` corrects a table of
p-values for multiple comparisons.
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


def paired_delta(system: list[dict[str, float]], reference: list[dict[str, float]]) -> float:
    """Mean difference over the queries every seed of both systems scored (the queries the paired test uses)."""
    shared = sorted(set.intersection(*(set(s) for s in system + reference)))
    return float(_matrix(system, shared).mean() - _matrix(reference, shared).mean())


ROUNDING = 1e-12  # resampled means of equal scores can differ by rounding alone (a mean of three copies of 0.1 is not 0.1): a tie
PAIRED_RESAMPLES = 20_000  # the smallest p is 2/20001 = 1e-4, so Holm over m tests cannot go below m x 1e-4 (< 0.05 up to ~500 tests)


def paired_bootstrap_p(
    system: list[dict[str, float]], reference: list[dict[str, float]], n_resamples: int = PAIRED_RESAMPLES, seed: int = 0
) -> float:
    """Two-sided p-value that the mean difference is 0, from a two-level paired bootstrap.

    Each resample draws each system's seeds with replacement (independently: training seeds are not
    paired) and the shared queries with replacement (paired: both systems answer the same queries);
    p = 2 x the share of resampled differences on the far side of 0 (ties within rounding included), with the
    +1 correction.
    With one seed per system it is a paired bootstrap over queries.
    """
    shared = sorted(set.intersection(*(set(s) for s in system + reference)))
    ours, theirs = _matrix(system, shared), _matrix(reference, shared)
    observed = ours.mean() - theirs.mean()
    rng = np.random.default_rng(seed)
    differences = []
    for size in [1000] * (n_resamples // 1000) + [n_resamples % 1000]:  # chunks keep memory at seeds x queries x 1000
        ours_means = ours[rng.integers(0, len(ours), (size, len(ours)))].mean(axis=1)
        theirs_means = theirs[rng.integers(0, len(theirs), (size, len(theirs)))].mean(axis=1)
        columns = rng.integers(0, len(shared), (size, len(shared)))
        differences.append(np.take_along_axis(ours_means - theirs_means, columns, axis=1).mean(axis=1))
    differences = np.concatenate(differences)
    if abs(observed) <= ROUNDING:
        return 1.0
    far_side = np.sum(differences <= ROUNDING) if observed > 0 else np.sum(differences >= -ROUNDING)
    return float(min(1.0, 2 * (far_side + 1) / (n_resamples + 1)))


def holm(p_values: list[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (step-down, monotone), in the input order."""
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    adjusted = [0.0] * len(p_values)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(p_values) - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def welch_p(system: list[float], reference: list[float]) -> float:
    """Two-sided p of Welch's t-test on per-seed values (unequal variances); at least one side must vary."""
    import warnings

    from scipy.stats import ttest_ind

    if np.ptp(system) == 0 and np.ptp(reference) == 0:
        raise ValueError("Welch's test needs spread on at least one side")
    with warnings.catch_warnings():  # scipy warns on nearly equal values; the p it returns is still the test's
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(ttest_ind(system, reference, equal_var=False).pvalue)
