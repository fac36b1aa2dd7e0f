"""`frozen`: a sentence-transformers model used as it is."""

from __future__ import annotations

from dataclasses import dataclass

from harness.encoders import EncodeSettings, SentenceTransformerEncoder, load_sentence_transformer
from harness.methods.base import FitContext, Fitted
from harness.models import resolve_model_path
from harness.task import Task


@dataclass(frozen=True)
class FrozenConfig:
    model: str = "minilm"  # alias of a packaged model or a local folder
    max_seq_length: int = 256
    batch_size: int = 64
    precision: str = "auto"  # auto (bf16 where supported) | fp32 | bf16
    query_prefix: str = ""
    document_prefix: str = ""

    def encode_settings(self, show_progress: bool = True) -> EncodeSettings:
        return EncodeSettings(
            batch_size=self.batch_size,
            max_seq_length=self.max_seq_length,
            precision=self.precision,
            query_prefix=self.query_prefix,
            document_prefix=self.document_prefix,
            show_progress=show_progress,
        )


class Frozen:
    name = "frozen"
    Config = FrozenConfig

    def fit(self, task: Task, config: FrozenConfig, context: FitContext) -> Fitted:
        model = load_sentence_transformer(resolve_model_path(config.model), context.device)
        encoder = SentenceTransformerEncoder(model, config.encode_settings(context.show_progress), context.device)
        return Fitted(encoder, {"trained": False})
