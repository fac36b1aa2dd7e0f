"""`frozen`: a sentence-transformers model used as it is."""

from __future__ import annotations

from dataclasses import dataclass

from harness.config_fields import added_later, stored_as
from harness.encoders import (
    CachingEncoder,
    EncodeSettings,
    SentenceTransformerEncoder,
    encode_settings_of,
    load_sentence_transformer,
    settings_fingerprint,
)
from harness.methods.base import FitContext, Fitted, MethodConfig
from harness.models import model_fingerprint, resolve_model_path
from harness.task import Task


@dataclass(frozen=True)
class FrozenConfig(MethodConfig):
    model: str = "minilm"  # alias of a packaged model or a local folder
    max_seq_length: int = 256
    encode_batch_size: int = stored_as("batch_size", 64)  # texts per encoding batch
    precision: str = "auto"  # auto (bf16 where supported) | fp32 | bf16
    query_prefix: str = ""
    document_prefix: str = ""
    compile: bool = added_later(False)  # torch.compile for inference: pays on large corpora (encoders.compile_for_inference)

    def encode_settings(self, show_progress: bool = True) -> EncodeSettings:
        return encode_settings_of(self, show_progress)


class Frozen:
    name = "frozen"
    Config = FrozenConfig

    def fit(self, task: Task, config: FrozenConfig, context: FitContext) -> Fitted:
        config.check(task)
        path = resolve_model_path(config.model)
        settings = config.encode_settings(context.show_progress)
        encoder = SentenceTransformerEncoder(load_sentence_transformer(path, context.device), settings, context.device)
        if context.embedding_cache is not None:
            fingerprint = settings_fingerprint(f"{model_fingerprint(path)}:{context.device}", settings)
            encoder = CachingEncoder(encoder, fingerprint, context.embedding_cache)
        return Fitted(encoder, {"trained": False})
