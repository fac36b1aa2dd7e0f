"""What a method is handed (`FitContext`), what it returns (`Fitted`), and what its config declares (`MethodConfig`).

A method is a class with a `name`, a `Config` dataclass and `fit(task, config, context) -> Fitted`.
Its `Config` subclasses `MethodConfig`, so orchestration asks the config instead of guessing:
`check(task)` (the one validation hook; every built-in `fit` calls it first), `expected_cost()`
(for scheduling), `model_slug()` (for result keys) and `reference` (the baseline it is compared to).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Optional, Protocol, Union

from harness.encoders import Encoder
from harness.errors import HarnessError
from harness.models import model_slug
from harness.search import Run
from harness.task import Task


@dataclass(frozen=True)
class FitContext:
    run_dir: Path  # scratch space for checkpoints and saved models (not committed)
    seed: int
    device: str
    show_progress: bool = True
    embedding_cache: Path | None = None  # where frozen encoders may cache embeddings; None = off


class Searcher(Protocol):
    """Encoder-less retrieval (BM25): returns the top-k run directly."""

    def search(self, queries: dict[str, str], k: int) -> Run: ...


@dataclass
class Fitted:
    """What `fit` returns: an encoder or a searcher, plus what training recorded."""

    retriever: Union[Encoder, Searcher]
    train_info: dict[str, Any] = field(default_factory=dict)


class MethodConfig:
    """What every method's config declares (a mixin of the frozen config dataclasses; it adds no fields)."""

    reference: ClassVar[Optional[str]] = None  # the baseline this method's rows are compared against

    def check(self, task: Task) -> None:
        """Raise `HarnessError` in one line if this config cannot run on `task` (before any model is loaded)."""

    def expected_cost(self) -> int:
        """Training examples seen (steps x batch): the order in which `--jobs` schedules runs, largest first."""
        return 0

    def model_slug(self) -> str:
        """The model part of result keys and file names."""
        return model_slug(self.model)


def require_train_split(task: Task, method: str) -> None:
    if not task.qrels.get("train"):
        raise HarnessError(f"task {task.name!r} has no train qrels: {method} needs qrels/train.tsv")
