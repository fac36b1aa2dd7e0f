"""Metric families: each turns one evaluation (a task split, a run, and the embeddings behind it) into a
flat `{mteb-style name: value}` dict, and says which of its metrics the leaderboard shows and how to plot them.

A family is one module that calls `register_family(MetricFamily(...))`; the runner scores every
registered family, and the leaderboard and report give each one its section. The built-in families
(retrieval, hierarchy, rag) register when this package is imported; a plugin family registers when its
module is imported with `--plugin`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Callable

import numpy as np

from harness.search import Run
from harness.task import Task


@dataclass
class Evaluation:
    """What the families score: the run on `split`, and for dense methods the embeddings behind it."""

    task: Task
    split: str
    run: Run
    seed: int = 0
    doc_ids: list[str] = field(default_factory=list)
    doc_vectors: np.ndarray | None = None
    query_ids: list[str] = field(default_factory=list)
    query_vectors: np.ndarray | None = None

    @cached_property
    def per_query(self) -> dict[str, dict[str, float]]:
        """Retrieval metrics per query (pytrec_eval), computed once for the means and the paired tests."""
        from harness.metrics.retrieval import per_query_scores

        return per_query_scores(self.task.qrels[self.split], self.run)


@dataclass(frozen=True)
class MetricFamily:
    name: str
    title: str  # the leaderboard section
    compute: Callable[[Evaluation], dict[str, float]]
    headline: tuple[str, ...]  # columns of its leaderboard section, when present in a task's results
    headline_prefixes: tuple[str, ...] = ()  # metrics whose names carry a parameter (matched by prefix)
    plot: Callable[[Any, str, Any], Any] | None = None  # (results frame, task, pyplot) -> figure or None
    plot_caption: str = ""  # the plot's alt text in the report, before " of <task>"


FAMILIES: dict[str, MetricFamily] = {}


def register_family(family: MetricFamily) -> MetricFamily:
    FAMILIES[family.name] = family
    return family


def score_all(evaluation: Evaluation) -> dict[str, float]:
    """Every registered family's metrics in one flat dict (a later family never overwrites an earlier name)."""
    scores: dict[str, float] = {}
    for family in FAMILIES.values():
        for name, value in family.compute(evaluation).items():
            scores.setdefault(name, value)
    return scores


# Built-in families, in leaderboard order.
from harness.metrics import retrieval, hierarchy, rag  # noqa: E402,F401  (they register themselves)
