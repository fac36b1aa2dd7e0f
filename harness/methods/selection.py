"""Dev-set model selection, shared by every trained method (sentence-transformers and causal-LM alike).

The dev split's nDCG@10 is measured exactly as the runner scores test (`harness.search.dense_search`
and pytrec_eval metrics) before training (step 0) and every `eval_steps` steps; the best trainable
weights are kept in memory and restored at the end, so the step-0 model wins when training does not
help. Only the dev split is read; a task without dev qrels, or `eval_steps = 0`, keeps the last step.
With `patience = n` (0 = off) training stops once n evaluations in a row have not beaten the best;
the weights restored are those of the best evaluation before the stop (`stopped_early_at` in `train_info`).
"""

from __future__ import annotations

import time
from typing import Callable

import torch

from harness.metrics.retrieval import retrieval_scores
from harness.search import dense_search
from harness.task import Task

SELECTION_METRIC = "ndcg_at_10"
CURVE_METRICS = ("ndcg_at_10", "mrr_at_10", "recall_at_10")


def dev_scores(encoder, task: Task, max_queries: int = 0) -> dict[str, float]:
    """The dev split (its first `max_queries` queries by id, 0 = all) scored by `encoder`."""
    queries = task.split_queries("dev")
    if max_queries:
        queries = dict(sorted(queries.items())[:max_queries])
    documents = {d: doc.full_text for d, doc in task.corpus.items()}
    run = dense_search(encoder, documents, queries, k=10).run
    return retrieval_scores({q: task.qrels["dev"][q] for q in queries}, run, k_values=(1, 10))


class DevSelection:
    """Scores dev when due and remembers the trainable weights of `module` at the best score."""

    def __init__(self, module: torch.nn.Module, score: Callable[[], dict[str, float]], task: Task, eval_steps: int,
                 patience: int = 0, score_untrained: Callable[[], dict[str, float]] | None = None):
        """`score_untrained`, if given, scores step 0 instead of `score` (e.g. from an embedding cache of the base model)."""
        self.module, self.score, self.eval_steps, self.patience = module, score, eval_steps, patience
        self.score_untrained = score_untrained or score
        self.enabled = eval_steps > 0 and bool(task.qrels.get("dev"))
        self.curve: list[dict[str, float]] = []
        self.best_step, self.best_score, self.best_state = -1, float("-inf"), None
        self.eval_seconds = 0.0
        self.stopped_at: int | None = None

    def due(self, step: int, last_step: int) -> bool:
        """Whether dev is scored after optimiser step `step` (1-based) of `last_step`; step 0 is scored by the caller."""
        return self.enabled and (step % self.eval_steps == 0 or step == last_step)

    def evaluate(self, step: int) -> None:
        started = time.perf_counter()
        scores = self.score_untrained() if step == 0 else self.score()
        self.eval_seconds += time.perf_counter() - started
        self.curve.append({"step": step, **{k: round(scores[k], 6) for k in CURVE_METRICS}})
        if scores[SELECTION_METRIC] > self.best_score:
            self.best_step, self.best_score = step, scores[SELECTION_METRIC]
            self.best_state = {n: p.detach().to("cpu", copy=True) for n, p in self.module.named_parameters() if p.requires_grad}

    def should_stop(self, step: int) -> bool:
        """After evaluating `step`: whether the last `patience` evaluations all failed to beat the best (records the stop)."""
        stale = sum(1 for point in self.curve if point["step"] > self.best_step)
        if self.patience > 0 and stale >= self.patience:
            self.stopped_at = step
        return self.stopped_at is not None

    def restore_best(self) -> None:
        if self.best_state is None:
            return
        parameters = dict(self.module.named_parameters())
        with torch.no_grad():
            for name, value in self.best_state.items():
                parameters[name].copy_(value.to(parameters[name].device))

    def info(self, steps: int) -> dict:
        """The shared `train_info` keys of selection: the step kept, the dev curve and its cost."""
        info = {
            "selected_step": self.best_step if self.best_state is not None else steps,
            "dev_curve": self.curve,
            "dev_eval_seconds": round(self.eval_seconds, 2),
        }
        if self.patience:  # absent otherwise, so results of configs without patience keep their exact train_info
            info["stopped_early_at"] = self.stopped_at
        return info
