"""Encoders turn texts into L2-normalised float32 vectors; dense methods return one from `fit`."""

from __future__ import annotations

import hashlib
import io
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal, Protocol, Sequence

import numpy as np

from harness import atomic
from harness.device import autocast

TextKind = Literal["query", "document"]


class Encoder(Protocol):
    def encode(self, texts: Sequence[str], kind: TextKind) -> np.ndarray:
        """Return one L2-normalised float32 row per text."""


@dataclass(frozen=True)
class EncodeSettings:
    batch_size: int = 64
    max_seq_length: int = 256
    precision: str = "auto"  # auto | fp32 | bf16
    query_prefix: str = ""
    document_prefix: str = ""
    show_progress: bool = True
    compile: bool = False  # torch.compile the transformer for inference (see `compile_for_inference`)


def encode_settings_of(config, show_progress: bool = True) -> EncodeSettings:
    """The encode settings of a method config with `encode_batch_size`, `max_seq_length`, `precision`, prefixes and `compile`."""
    return EncodeSettings(
        batch_size=config.encode_batch_size,
        max_seq_length=config.max_seq_length,
        precision=config.precision,
        query_prefix=config.query_prefix,
        document_prefix=config.document_prefix,
        show_progress=show_progress,
        compile=config.compile,
    )


def load_sentence_transformer(path: Path, device: str, max_seq_length: int | None = None):
    from sentence_transformers import SentenceTransformer

    # safetensors only: a .bin checkpoint would be unpickled; no remote code is ever run
    model = SentenceTransformer(str(path), device=device, local_files_only=True, trust_remote_code=False,
                                model_kwargs={"use_safetensors": True})
    if max_seq_length:
        model.max_seq_length = max_seq_length
    return model


def compile_for_inference(model) -> None:
    """Fuse the transformer's kernels with inductor, weights frozen in as constants (and prepacked
    for oneDNN on CPU). bf16 encoding on a 2-core AVX512-BF16 CPU: 1.15-1.17x faster after a
    one-off compile of 13-16 s per process (BENCHMARKS.md), so it pays on large corpora only.
    The model must not be trained afterwards: its compiled forward keeps the weights it saw first.
    """
    import torch

    inner = model[0].model if hasattr(model[0], "model") else model[0].auto_model
    if not getattr(inner, "_harness_compiled", False):
        inner.forward = torch.compile(inner.forward, dynamic=True, options={"freezing": True})
        inner._harness_compiled = True


class SentenceTransformerEncoder:
    """Wraps a SentenceTransformer; its encode already batches texts sorted by length."""

    def __init__(self, model, settings: EncodeSettings, device: str):
        self.model, self.settings, self.device = model, settings, device
        if settings.max_seq_length:
            model.max_seq_length = settings.max_seq_length
        if settings.compile:
            compile_for_inference(model)

    def encode(self, texts: Sequence[str], kind: TextKind) -> np.ndarray:
        prefix = self.settings.query_prefix if kind == "query" else self.settings.document_prefix
        with autocast(self.settings.precision, self.device):
            vectors = self.model.encode(
                [prefix + t for t in texts],
                batch_size=self.settings.batch_size,
                convert_to_numpy=True,
                normalize_embeddings=True,
                show_progress_bar=self.settings.show_progress,
            )
        return np.asarray(vectors, dtype=np.float32)


class CachingEncoder:
    """Reuses embeddings of the same texts by the same model: re-scoring never re-encodes.

    A cache entry is keyed by the model's fingerprint (its files and encode settings), the kind and
    the exact texts, and stored as a .npy file (loaded without pickle) plus a `.npy.checksum` JSON
    sidecar with the file's size and sha256 and the array's shape and dtype, each written atomically,
    the sidecar last. An entry is used only if it matches its sidecar and has one row per text; a
    corrupt one is recomputed and overwritten, one without sidecar (written before checksums existed)
    counts as a miss. `cache_use` reports how many entries were hits, misses and corrupt.
    """

    def __init__(self, encoder: Encoder, fingerprint: str, cache_dir: Path):
        self.encoder, self.fingerprint, self.cache_dir = encoder, fingerprint, cache_dir
        self.hits = self.misses = self.corrupt = 0

    def _path(self, texts: Sequence[str], kind: TextKind) -> Path:
        digest = hashlib.sha256(f"{self.fingerprint}\0{kind}".encode())
        for text in texts:
            digest.update(b"\0" + text.encode("utf-8"))
        return self.cache_dir / f"{digest.hexdigest()[:32]}.npy"

    def encode(self, texts: Sequence[str], kind: TextKind) -> np.ndarray:
        path = self._path(texts, kind)
        vectors, problem = read_cache_entry(path, rows=len(texts))
        if vectors is not None:
            self.hits += 1
            return vectors
        if problem:
            self.corrupt += 1
            print(f"[harness] embedding cache entry {path} is corrupt ({problem}); recomputing",
                  file=sys.stderr, flush=True)
        else:
            self.misses += 1
        vectors = self.encoder.encode(texts, kind)
        write_cache_entry(path, vectors)
        return vectors

    def cache_use(self) -> dict[str, int]:
        return {"hits": self.hits, "misses": self.misses, "corrupt": self.corrupt}


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".checksum")  # not *.json: tools read those as results when a cache sits below --out


def write_cache_entry(path: Path, vectors: np.ndarray) -> None:
    """The array, then its checksum: a reader never finds a sidecar that vouches for a partial array."""
    buffer = io.BytesIO()
    np.save(buffer, vectors, allow_pickle=False)
    data = buffer.getvalue()
    atomic.write_bytes(path, data)
    expected = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest(),
                "shape": list(vectors.shape), "dtype": str(vectors.dtype)}
    atomic.write_text(_sidecar(path), json.dumps(expected) + "\n")


def read_cache_entry(path: Path, rows: int) -> tuple[np.ndarray | None, str | None]:
    """The cached array and None, or None and why the entry is corrupt (None, None: there is no entry)."""
    try:
        expected = json.loads(_sidecar(path).read_text(encoding="utf-8"))
        data = path.read_bytes()
    except FileNotFoundError:  # never written, or written before entries carried a checksum
        return None, None
    except ValueError:
        return None, "unreadable checksum file"
    problem = _entry_problem(data, expected)
    if problem:
        return None, problem
    vectors = np.load(io.BytesIO(data), allow_pickle=False)
    if vectors.ndim != 2 or vectors.shape[0] != rows:  # a consistent entry for other texts: never trust it
        return None, f"shape {vectors.shape} for {rows} texts"
    return vectors, None


def _entry_problem(data: bytes, expected: dict) -> str | None:
    """The whole file is hashed, so its header (shape, dtype) is covered as well as the values."""
    try:
        size, digest = expected["bytes"], expected["sha256"]
    except (TypeError, KeyError):
        return "unreadable checksum file"
    if len(data) != size:
        return f"{len(data)} bytes, expected {size}"
    if hashlib.sha256(data).hexdigest() != digest:
        return "checksum mismatch"
    return None


def settings_fingerprint(model_fingerprint: str, settings: EncodeSettings) -> str:
    """What decides an embedding: the model's files and every encode setting except progress bars."""
    spec = {**asdict(settings), "show_progress": None, "model": model_fingerprint}
    if not settings.compile:  # the key of embeddings cached before the setting existed
        del spec["compile"]
    return hashlib.sha256(repr(sorted(spec.items())).encode()).hexdigest()[:24]
