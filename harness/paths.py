"""Where the harness finds task cards, baseline configs, built data and results."""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
TASK_CARDS_DIR = PROJECT_ROOT / "tasks"
BASELINES_DIR = PROJECT_ROOT / "baselines"
RESULTS_DIR = PROJECT_ROOT / "results"


def data_dir() -> Path:
    """Built task folders live here; `HARNESS_DATA_DIR` overrides the default cache."""
    env = os.environ.get("HARNESS_DATA_DIR")
    return Path(env) if env else Path.home() / ".cache" / "harness" / "data"


def runs_dir() -> Path:
    """Fine-tuned models and other run artifacts (not committed); `HARNESS_RUNS_DIR` overrides."""
    env = os.environ.get("HARNESS_RUNS_DIR")
    return Path(env) if env else PROJECT_ROOT / "runs"


def embedding_cache_dir() -> Path:
    """Cached embeddings of frozen encoders; `HARNESS_EMBEDDING_CACHE` overrides."""
    env = os.environ.get("HARNESS_EMBEDDING_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "harness" / "embeddings"
