"""The method protocol and what the runner hands a method."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol, Union

from harness.encoders import Encoder
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


class Method(Protocol):
    name: ClassVar[str]
    Config: ClassVar[type]

    def fit(self, task: Task, config: Any, context: FitContext) -> Fitted: ...
