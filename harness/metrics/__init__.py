"""Metric families: each turns one evaluation (a task split, a run, and the embeddings behind it) into a
flat `{mteb-style name: value}` dict, and says which of its metrics the leaderboard shows and how to plot them.

A family is one module that calls `register_family(MetricFamily(...))`; the runner scores every
registered family, and the leaderboard and report give each one its section. The built-in families
(retrieval, hierarchy, rag: their metrics in the modules of those names) are registered at the end of this
file, in leaderboard order; a plugin family registers when its module is imported with `--plugin`.
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
    legend: str = ""  # what the section measures and what it does not, printed once at the top of the report
    scored_on_curated_labels: bool = False  # rows trained on those labels are marked label-supervised in it


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


from harness.metrics import hierarchy, rag, retrieval  # noqa: E402  (they need Evaluation's module loaded first)

register_family(MetricFamily(
    name="retrieval",
    title="Retrieval",
    compute=retrieval.family_scores,
    headline=("ndcg_at_10", "mrr_at_10", "recall_at_10", "recall_at_100", "map_at_10", "hit_rate_at_1"),
))
register_family(MetricFamily(
    name="hierarchy",
    title="Hierarchical classification (curated labels; l1 = root level)",
    compute=hierarchy.family_scores,
    headline=("hier_l1_doc_accuracy", "hier_l2_doc_accuracy", "hier_l2_doc_macro_f1", "hier_l3_doc_accuracy",
              "hier_path_doc_f1", "hier_path_doc_consistency", "hier_l1_query_accuracy", "hier_l2_query_accuracy",
              "hier_path_query_f1", "hier_l1_doc_v_measure", "hier_l2_doc_v_measure"),
    plot=hierarchy.plot_levels,
    plot_caption="hierarchy levels",
    legend=("linear probes (fitted and scored on one fixed, seeded split of the documents, and of the queries "
            "labelled with their gold document's path) and k-means V-measure on the document embeddings, against "
            "the task's curated label paths: how well the embedding separates the curated hierarchy, not retrieval."),
    scored_on_curated_labels=True,
))
register_family(MetricFamily(
    name="rag",
    title="RAG hallucination proxies",
    compute=rag.family_scores,
    headline=("gold_context_hit_rate_at_1", "gold_context_hit_rate_at_5", "context_precision_at_5",
              "context_precision_at_10", "wrong_branch_rate_l1_at_5_on_miss", "wrong_branch_rate_l2_at_5_on_miss"),
    # the generator-based proxies (`harness answer`, or `run --generator`; harness/rag_generation.py) carry k in their names
    headline_prefixes=("hallucinated_answer_rate_", "answer_abstention_rate_at_"),
    legend=("from the ranking alone, what a generator would be given: gold_context_hit_rate is hit rate, "
            "context_precision is RAGAS's on ids; wrong_branch_rate_l{l}_at_5_on_miss is the share of the top 5 that "
            "leave every gold document's curated branch at level l, over the queries whose top 5 holds no relevant "
            "document (the distractor-only case; the plain wrong_branch_rate in the result files counts the gold "
            "context as on-branch and so partly restates hit rate). These bound what a generator could be misled by; "
            "they generate nothing. The generated columns (rows answered by `harness answer`) do generate: a local LM "
            "answers a fixed, seeded sample of test queries from the top k contexts; hallucinated_answer_rate_"
            "{lexical,nli}_{context,gold}_at_k is the share of answers with a sentence unsupported by the contexts or "
            "by the gold documents, where an abstention (\"the passages do not contain...\") is never a hallucination "
            "and answer_abstention_rate_at_k says how often the LM abstained. Lexical support is token overlap: it "
            "measures copying, not truth, and a 135M generator mostly copies. Each answered query's outcome is kept, "
            "and the paired tests of generated answers compare the rows on it."),
    scored_on_curated_labels=True,
))
