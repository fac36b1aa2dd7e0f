"""Installed packages that ship data or models: their folder and version, found without importing them."""

from __future__ import annotations

from importlib import metadata, util
from pathlib import Path

from harness.errors import HarnessError


def package_dir(module: str) -> Path:
    """The folder of an installed package, found without importing it."""
    spec = util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise HarnessError(f"package `{module}` is not installed: pip install it (see README set-up)")
    return Path(next(iter(spec.submodule_search_locations)))


def package_version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        raise HarnessError(f"package `{distribution}` is not installed: pip install it (see README set-up)") from None
