"""Where the harness finds task cards, baseline configs, built data, results and run artifacts."""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
CHECKOUT_ROOT = PACKAGE_DIR.parent  # the repository, when run from a checkout or an editable install


def _shipped(inside_package: str, in_checkout: str) -> Path:
    """A wheel carries tasks/ and baselines/ inside the package (see pyproject.toml); a checkout has them on top."""
    bundled = PACKAGE_DIR / inside_package
    return bundled if bundled.is_dir() else CHECKOUT_ROOT / in_checkout


TASK_CARDS_DIR = _shipped("cards", "tasks")
BASELINES_DIR = _shipped("baseline_configs", "baselines")


def default_results_dir() -> Path:
    """`--out` default: results/ in the working directory (never inside an installed package)."""
    return Path.cwd() / "results"


def data_dir() -> Path:
    """Built task folders live here; `HARNESS_DATA_DIR` overrides the default cache."""
    env = os.environ.get("HARNESS_DATA_DIR")
    return Path(env) if env else Path.home() / ".cache" / "harness" / "data"


def runs_dir() -> Path:
    """Fine-tuned models and other run artifacts (not committed): runs/ in the working directory;
    `HARNESS_RUNS_DIR` overrides."""
    env = os.environ.get("HARNESS_RUNS_DIR")
    return Path(env) if env else Path.cwd() / "runs"


def embedding_cache_dir() -> Path:
    """Cached embeddings of frozen encoders; `HARNESS_EMBEDDING_CACHE` overrides."""
    env = os.environ.get("HARNESS_EMBEDDING_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "harness" / "embeddings"


def models_dir() -> Path:
    """Converted or assembled model folders (packaged causal LMs, mpnet); `HARNESS_MODELS_DIR` overrides the
    default beside the data cache."""
    env = os.environ.get("HARNESS_MODELS_DIR")
    return Path(env) if env else data_dir().parent / "models"
