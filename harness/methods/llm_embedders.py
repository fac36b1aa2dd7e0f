"""`llm-frozen` and `llm-cl`: a causal LM as an embedder, as it is or LoRA-tuned with an in-batch contrastive loss.

`llm-frozen` pools the final hidden states of the packaged causal LM (mean over the text, or the state
of an appended EOS token for `pooling = "last"`, as Qwen3-Embedding does). `llm-cl` is the "LLM+CL"
baseline of the LBR paper: LoRA on the same LM and pooling, trained with InfoNCE on the task's train
pairs over duplicate-free batches (`harness.methods.in_batch`), with the training loop and dev-set
selection of `harness.methods.causal_training`. Tokenising, pooling and the Encoder wrapper live in
`harness.llm`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace

import torch

from harness.config_fields import stored_as
from harness.llm import RowEncoder, TextFormat, load_causal_lm, pooled_states
from harness.methods.base import FitContext, Fitted, require_train_split
from harness.methods.causal_training import (
    LLMEncodingFields,
    LLMTrainFields,
    Schedule,
    check_pooling,
    dev_selection,
    save_adapter,
    train,
    wrap_with_lora,
)
from harness.methods.in_batch import DuplicateFreeBatches, false_negatives, info_nce, positives_by_query
from harness.task import Task


@dataclass(frozen=True)
class LLMFrozenConfig(LLMEncodingFields):
    model: str = "smollm2"  # packaged causal-LM alias or a local Hugging Face folder
    pooling: str = "mean"  # mean over the text | last (state of an appended EOS)

    def check(self, task: Task) -> None:
        check_pooling(self.pooling, "llm-frozen")


def text_format(config: LLMFrozenConfig) -> TextFormat:
    return TextFormat(config.max_query_length, config.max_document_length, config.query_prefix,
                      config.document_prefix, append_eos=config.pooling == "last")


def row_encoder(embed, form: TextFormat, tokenizer, config, context: FitContext) -> RowEncoder:
    """An encoder over `embed(rows)` with the config's encode batch size and precision (llm-frozen, llm-cl, lbr)."""
    return RowEncoder(embed=embed, rows=lambda texts, kind: form.rows(tokenizer, texts, kind), batch_size=config.encode_batch_size,
                      precision=config.precision, device=context.device, show_progress=context.show_progress)


def pooled_encoder(model, tokenizer, config: LLMFrozenConfig, context: FitContext) -> RowEncoder:
    embed = lambda rows: pooled_states(model, rows, config.pooling, tokenizer.pad_token_id, context.device)  # noqa: E731
    return row_encoder(embed, text_format(config), tokenizer, config, context)


class LLMFrozen:
    name = "llm-frozen"
    Config = LLMFrozenConfig

    def fit(self, task: Task, config: LLMFrozenConfig, context: FitContext) -> Fitted:
        config.check(task)
        model, tokenizer = load_causal_lm(config.model, context.device)
        return Fitted(pooled_encoder(model, tokenizer, config, context), {"trained": False})


@dataclass(frozen=True)
class LLMContrastiveConfig(LLMTrainFields, LLMFrozenConfig):
    max_steps: int = stored_as("steps", 200)
    train_batch_size: int = 16  # pairs per step; the other pairs' documents are the negatives
    learning_rate: float = stored_as("lr", 1e-4)
    tau: float = 0.05  # InfoNCE temperature (LLM2Vec 0.05, GritLM 0.02)

    def check(self, task: Task) -> None:
        check_pooling(self.pooling, "llm-cl")
        require_train_split(task, "llm-cl")

    def expected_cost(self) -> int:
        return self.max_steps * self.train_batch_size


class LLMContrastive:
    name = "llm-cl"
    Config = LLMContrastiveConfig

    def fit(self, task: Task, config: LLMContrastiveConfig, context: FitContext) -> Fitted:
        config.check(task)
        pairs = task.train_pairs("train")
        base, tokenizer = load_causal_lm(config.model, context.device)
        model = wrap_with_lora(base, config).train()
        encoder = pooled_encoder(model, tokenizer, config, context)
        selection = dev_selection(model, pooled_encoder(model, tokenizer, config, replace(context, show_progress=False)), task, config)
        batches = iter(DuplicateFreeBatches(pairs, config.train_batch_size, random.Random(context.seed)))
        positives = positives_by_query(pairs)

        def step_losses(step: int) -> dict[str, torch.Tensor]:
            batch = next(batches)
            queries, docs = [pairs[i][0] for i in batch], [pairs[i][1] for i in batch]
            query_vectors = encoder.embed(encoder.rows(queries, "query"))
            doc_vectors = encoder.embed(encoder.rows(docs, "document"))
            return {"loss": info_nce(query_vectors, doc_vectors, config.tau, false_negatives(queries, docs, positives))}

        schedule = Schedule(config.max_steps, config.learning_rate, config.warmup_ratio, config.weight_decay)
        info = train(model, schedule, step_losses, config.precision, context.device, "llm-cl", context.show_progress, selection)
        adapter = save_adapter(model, context.run_dir)
        merged = model.merge_and_unload().eval()  # plain weights encode faster than LoRA layers
        return Fitted(pooled_encoder(merged, tokenizer, config, context),
                      {"trained": True, "train_pairs": len(pairs), **info, "adapter": str(adapter)})
