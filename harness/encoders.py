"""Encoders turn texts into L2-normalised float32 vectors; dense methods return one from `fit`."""

from __future__ import annotations

import hashlib
import io
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
    the exact texts, and stored as one .npy file written atomically (loaded without pickle).
    """

    def __init__(self, encoder: Encoder, fingerprint: str, cache_dir: Path):
        self.encoder, self.fingerprint, self.cache_dir = encoder, fingerprint, cache_dir
        self.hits = 0

    def _path(self, texts: Sequence[str], kind: TextKind) -> Path:
        digest = hashlib.sha256(f"{self.fingerprint}\0{kind}".encode())
        for text in texts:
            digest.update(b"\0" + text.encode("utf-8"))
        return self.cache_dir / f"{digest.hexdigest()[:32]}.npy"

    def encode(self, texts: Sequence[str], kind: TextKind) -> np.ndarray:
        path = self._path(texts, kind)
        if path.exists():
            self.hits += 1
            return np.load(path, allow_pickle=False)
        vectors = self.encoder.encode(texts, kind)
        buffer = io.BytesIO()
        np.save(buffer, vectors, allow_pickle=False)
        atomic.write_bytes(path, buffer.getvalue())
        return vectors


def settings_fingerprint(model_fingerprint: str, settings: EncodeSettings) -> str:
    """What decides an embedding: the model's files and every encode setting except progress bars."""
    spec = {**asdict(settings), "show_progress": None, "model": model_fingerprint}
    if not settings.compile:  # the key of embeddings cached before the setting existed
        del spec["compile"]
    return hashlib.sha256(repr(sorted(spec.items())).encode()).hexdigest()[:24]
