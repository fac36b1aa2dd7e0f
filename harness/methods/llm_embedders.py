"""`llm-frozen` and `llm-cl`: a causal LM as an embedder, as it is or LoRA-tuned with an in-batch contrastive loss.

`llm-frozen` pools the final hidden states of the packaged causal LM (mean over the text, or the state
of an appended EOS token for `pooling = "last"`, as Qwen3-Embedding does). `llm-cl` is the "LLM+CL"
baseline of the LBR paper: LoRA on the same LM and pooling, trained with InfoNCE on the task's train
pairs. Several queries share a document on these tasks, so batches are drawn duplicate-free (no
document or query text twice in a batch) and any other positive of a query that still lands in its
batch is masked out of the negatives.

The training pieces here (`add_lora`, `DuplicateFreeBatches`, `info_nce`, `Schedule`, `train`) are
shared with `lbr`; tokenising, pooling and the Encoder wrapper live in `harness.llm`.
"""

from __future__ import annotations

import math
import random
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

import torch
import torch.nn.functional as F

from harness import atomic
from harness.device import autocast
from harness.errors import HarnessError
from harness.llm import POOLINGS, RowEncoder, TextFormat, load_causal_lm, pooled_states
from harness.methods.base import FitContext, Fitted
from harness.task import Task


def add_lora(model, rank: int, alpha: float, dropout: float, targets: Sequence[str]):
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=dropout, target_modules=list(targets), bias="none")
    return get_peft_model(model, config)


def save_adapter(model, folder: Path, tensors: dict[str, torch.Tensor] | None = None) -> None:
    """LoRA weights (a few MB) plus any extra trained tensors, so a run can be reused without retraining."""
    if folder.exists():  # a rerun (--overwrite) replaces the earlier adapter
        shutil.rmtree(folder)
    with atomic.directory(folder) as scratch:
        model.save_pretrained(scratch)
        for name, tensor in (tensors or {}).items():
            torch.save(tensor.detach().cpu(), scratch / f"{name}.pt")


class DuplicateFreeBatches:
    """Endless batches of pair indices in which no document text and no query text occurs twice.

    Each epoch is a fresh shuffle; a pair that would repeat a text waits for a later batch of the same epoch.
    """

    def __init__(self, pairs: Sequence[tuple[str, str]], batch_size: int, rng: random.Random):
        if len({d for _, d in pairs}) < 2:
            raise HarnessError("contrastive training needs train pairs with at least 2 distinct documents")
        self.pairs, self.batch_size, self.rng = pairs, batch_size, rng

    def __iter__(self) -> Iterator[list[int]]:
        while True:
            waiting = list(range(len(self.pairs)))
            self.rng.shuffle(waiting)
            while waiting:
                batch, later, queries, docs = [], [], set(), set()
                for i in waiting:
                    query, doc = self.pairs[i]
                    if len(batch) < self.batch_size and query not in queries and doc not in docs:
                        batch.append(i)
                        queries.add(query)
                        docs.add(doc)
                    else:
                        later.append(i)
                waiting = later
                yield batch


def false_negatives(queries: Sequence[str], docs: Sequence[str], positives: dict[str, set[str]]) -> torch.Tensor:
    """(q, d) True where batch document d is a positive of batch query q other than its own pair."""
    return torch.tensor(
        [[i != j and doc in positives.get(query, ()) for j, doc in enumerate(docs)] for i, query in enumerate(queries)],
        dtype=torch.bool,
    )


def positives_by_query(pairs: Sequence[tuple[str, str]]) -> dict[str, set[str]]:
    positives: dict[str, set[str]] = {}
    for query, doc in pairs:
        positives.setdefault(query, set()).add(doc)
    return positives


def info_nce(queries: torch.Tensor, docs: torch.Tensor, tau: float, masked: torch.Tensor | None = None) -> torch.Tensor:
    """Cross-entropy of query i against document i, with the other in-batch documents as negatives."""
    scores = queries.float() @ docs.float().T / tau
    if masked is not None:
        scores = scores.masked_fill(masked.to(scores.device), float("-inf"))
    return F.cross_entropy(scores, torch.arange(len(queries), device=scores.device))


@dataclass(frozen=True)
class Schedule:
    steps: int
    lr: float
    warmup_ratio: float = 0.05
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0

    def factor(self, step: int) -> float:
        """Linear warm-up, then cosine decay to zero."""
        warmup = max(1, round(self.warmup_ratio * self.steps))
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, self.steps - warmup)))


def train(
    parameters: list[torch.nn.Parameter],
    schedule: Schedule,
    step_losses: Callable[[int], dict[str, torch.Tensor]],
    precision: str,
    device: str,
    label: str,
    show_progress: bool,
) -> dict:
    """Run `schedule.steps` AdamW steps on the `loss` that `step_losses(step)` returns; report timing and losses."""
    optimizer = torch.optim.AdamW(parameters, lr=schedule.lr, weight_decay=schedule.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule.factor)
    history: dict[str, list[float]] = {}
    steps = range(schedule.steps)
    if show_progress:
        from tqdm.auto import tqdm

        steps = tqdm(steps, desc=label, unit="step")
    started = time.perf_counter()
    for step in steps:
        with autocast(precision, device):
            losses = step_losses(step)
        optimizer.zero_grad(set_to_none=True)
        losses["loss"].backward()
        torch.nn.utils.clip_grad_norm_(parameters, schedule.max_grad_norm)
        optimizer.step()
        scheduler.step()
        for name, value in losses.items():
            history.setdefault(name, []).append(float(value.detach()))
    seconds = time.perf_counter() - started
    return {
        "steps": schedule.steps,
        "seconds": round(seconds, 2),
        "seconds_per_step": round(seconds / max(1, schedule.steps), 3),
        **{f"{name}_curve": _curve(values) for name, values in history.items()},
    }


def _curve(values: list[float], points: int = 10) -> list[float]:
    """Mean loss over `points` equal stretches of training: enough to see a trend in a result file."""
    size = max(1, math.ceil(len(values) / points))
    return [round(sum(chunk) / len(chunk), 4) for chunk in (values[i : i + size] for i in range(0, len(values), size))]


def lora_parameters(model) -> list[torch.nn.Parameter]:
    return [p for p in model.parameters() if p.requires_grad]


@dataclass(frozen=True)
class LLMEncodingFields:
    """How every causal-LM method (llm-frozen, llm-cl, lbr) reads and batches texts."""

    max_query_length: int = 64
    max_document_length: int = 256
    batch_size: int = 16  # texts per encoding batch
    precision: str = "auto"  # auto (bf16 autocast where supported) | fp32 | bf16
    query_prefix: str = ""
    document_prefix: str = ""


@dataclass(frozen=True)
class LLMLoraFields:
    """The LoRA adapter and optimiser settings the trained causal-LM methods (llm-cl, lbr) share."""

    warmup_ratio: float = 0.05
    weight_decay: float = 0.01
    lora_rank: int = 16
    lora_alpha: float = 32.0
    lora_dropout: float = 0.05
    lora_targets: tuple = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True)
class LLMFrozenConfig(LLMEncodingFields):
    model: str = "smollm2"  # packaged causal-LM alias or a local Hugging Face folder
    pooling: str = "mean"  # mean over the text | last (state of an appended EOS)


def text_format(config) -> TextFormat:
    if config.pooling not in POOLINGS:
        raise HarnessError(f"pooling must be one of {', '.join(POOLINGS)}, got {config.pooling!r}")
    return TextFormat(config.max_query_length, config.max_document_length, config.query_prefix,
                      config.document_prefix, append_eos=config.pooling == "last")


def pooled_encoder(model, tokenizer, config, context: FitContext) -> RowEncoder:
    form = text_format(config)
    return RowEncoder(
        embed=lambda rows: pooled_states(model, rows, config.pooling, tokenizer.pad_token_id, context.device),
        rows=lambda texts, kind: form.rows(tokenizer, texts, kind),
        batch_size=config.batch_size,
        precision=config.precision,
        device=context.device,
        show_progress=context.show_progress,
    )


class LLMFrozen:
    name = "llm-frozen"
    Config = LLMFrozenConfig

    def fit(self, task: Task, config: LLMFrozenConfig, context: FitContext) -> Fitted:
        model, tokenizer = load_causal_lm(config.model, context.device)
        return Fitted(pooled_encoder(model, tokenizer, config, context), {"trained": False})


@dataclass(frozen=True)
class LLMContrastiveConfig(LLMLoraFields, LLMFrozenConfig):
    steps: int = 200
    train_batch_size: int = 16  # pairs per step; the other pairs' documents are the negatives
    lr: float = 1e-4
    tau: float = 0.05  # InfoNCE temperature (LLM2Vec 0.05, GritLM 0.02)


class LLMContrastive:
    name = "llm-cl"
    Config = LLMContrastiveConfig

    def fit(self, task: Task, config: LLMContrastiveConfig, context: FitContext) -> Fitted:
        pairs = task.train_pairs("train")
        if not pairs:
            raise HarnessError(f"task {task.name} has no train pairs: llm-cl needs a train split")
        base, tokenizer = load_causal_lm(config.model, context.device)
        model = add_lora(base, config.lora_rank, config.lora_alpha, config.lora_dropout, config.lora_targets).train()
        encoder = pooled_encoder(model, tokenizer, config, context)
        batches = iter(DuplicateFreeBatches(pairs, config.train_batch_size, random.Random(context.seed)))
        positives = positives_by_query(pairs)

        def step_losses(step: int) -> dict[str, torch.Tensor]:
            batch = next(batches)
            queries, docs = [pairs[i][0] for i in batch], [pairs[i][1] for i in batch]
            query_vectors = encoder.embed(encoder.rows(queries, "query"))
            doc_vectors = encoder.embed(encoder.rows(docs, "document"))
            return {"loss": info_nce(query_vectors, doc_vectors, config.tau, false_negatives(queries, docs, positives))}

        schedule = Schedule(config.steps, config.lr, config.warmup_ratio, config.weight_decay)
        info = train(lora_parameters(model), schedule, step_losses, config.precision, context.device, "llm-cl",
                     context.show_progress)
        save_adapter(model, context.run_dir / "adapter")
        merged = model.merge_and_unload().eval()  # plain weights encode faster than LoRA layers
        return Fitted(pooled_encoder(merged, tokenizer, config, context),
                      {"trained": True, "train_pairs": len(pairs), "adapter": str(context.run_dir / "adapter"), **info})
