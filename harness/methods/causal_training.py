"""Training for the causal-LM methods (`llm-cl`, `lbr`): config fields, LoRA, the step loop, dev selection, saving.

The same contract as `harness.methods.st_training` for the sentence-transformers methods:

* the same config vocabulary: `max_steps` optimiser steps of `train_batch_size` examples at
  `learning_rate`, `warmup_ratio`, `weight_decay`, `encode_batch_size`, `lora_rank`/`lora_alpha`/
  `lora_dropout`/`lora_target_modules`, `eval_steps`/`dev_max_queries`;
* the same dev-set model selection (`harness.methods.selection`): dev nDCG@10 at step 0 and every
  `eval_steps` steps, best trainable weights restored. It is off by default (`eval_steps = 0`) so that
  configs written before it keep their hash; the baseline files turn it on;
* the same `train_info` keys: `trained`, `steps`, `train_seconds`, `seconds_per_step`, `selected_step`,
  `dev_curve`, `dev_eval_seconds`, `loss_log` (the saved LoRA folder is `adapter`, as `harness.export_model` reads).

The loop is hand-written (two losses per step in `lbr`, a custom batch sampler) with AdamW, gradient
clipping at 1.0, linear warm-up and cosine decay to zero (`Schedule`; the warm-up starts at
1/warmup, not at 0 as `transformers.get_scheduler("cosine")` does, and is kept so stored results
reproduce). Fields renamed to the shared vocabulary are hashed under their old names
(`steps`, `lr`, `batch_size`, `lora_targets`; `harness.config_fields.stored_as`).
"""

from __future__ import annotations

import math
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import torch

from harness import atomic
from harness.config_fields import added_later, stored_as
from harness.device import autocast
from harness.errors import HarnessError
from harness.llm import POOLINGS
from harness.methods.base import MethodConfig
from harness.methods.selection import DevSelection, dev_scores
from harness.task import Task

LOG_POINTS = 10  # loss_log entries per run: enough to see a trend in a result file


@dataclass(frozen=True)
class LLMEncodingFields(MethodConfig):
    """How every causal-LM method (llm-frozen, llm-cl, lbr) reads and batches texts."""

    max_query_length: int = 64
    max_document_length: int = 256
    encode_batch_size: int = stored_as("batch_size", 16)  # texts per encoding batch
    precision: str = "auto"  # auto (bf16 autocast where supported) | fp32 | bf16
    query_prefix: str = ""
    document_prefix: str = ""


@dataclass(frozen=True)
class LLMTrainFields:
    """The LoRA adapter, optimiser and selection settings the trained causal-LM methods (llm-cl, lbr) share."""

    warmup_ratio: float = 0.05
    weight_decay: float = 0.01
    lora_rank: int = 16
    lora_alpha: float = 32.0
    lora_dropout: float = 0.05
    lora_target_modules: tuple = stored_as("lora_targets", ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"))
    eval_steps: int = added_later(0)  # dev nDCG@10 every this many steps (and at step 0); 0 = no selection
    dev_max_queries: int = added_later(0)  # dev queries used for selection, 0 = all


def check_pooling(pooling: str, method: str) -> None:
    if pooling not in POOLINGS:
        raise HarnessError(f"{method} pooling must be one of {', '.join(POOLINGS)}, got {pooling!r}")


def wrap_with_lora(model, config: LLMTrainFields):
    """The model inside a peft LoRA wrapper: base weights frozen, the adapter trainable."""
    from peft import LoraConfig, get_peft_model

    lora = LoraConfig(r=config.lora_rank, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                      target_modules=list(config.lora_target_modules), bias="none")
    return get_peft_model(model, lora)


def save_adapter(model, run_dir: Path, tensors: dict[str, torch.Tensor] | None = None) -> Path:
    """LoRA weights (a few MB) plus any extra trained tensors under `run_dir/adapter`, replacing an earlier run's."""
    final = run_dir / "adapter"
    if final.exists():  # a rerun (--overwrite) replaces the earlier adapter
        shutil.rmtree(final)
    with atomic.directory(final) as scratch:
        model.save_pretrained(scratch)
        for name, tensor in (tensors or {}).items():
            torch.save(tensor.detach().cpu(), scratch / f"{name}.pt")
    return final


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


def dev_selection(module: torch.nn.Module, encoder, task: Task, config: LLMTrainFields) -> DevSelection:
    """Selection over `module`'s trainable weights, scoring dev with `encoder` (which reads `module`) in eval mode."""

    def score() -> dict[str, float]:
        module.eval()  # no LoRA dropout while scoring
        try:
            return dev_scores(encoder, task, config.dev_max_queries)
        finally:
            module.train()

    return DevSelection(module, score, task, config.eval_steps)


def train(
    module: torch.nn.Module,
    schedule: Schedule,
    step_losses: Callable[[int], dict[str, torch.Tensor]],
    precision: str,
    device: str,
    label: str,
    show_progress: bool,
    selection: Optional[DevSelection] = None,
) -> dict:
    """`schedule.steps` AdamW steps on the `loss` that `step_losses(step)` returns, over `module`'s trainable
    parameters; with `selection`, the dev-best weights are restored at the end. Returns the shared train_info keys."""
    parameters = [p for p in module.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(parameters, lr=schedule.lr, weight_decay=schedule.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule.factor)
    history: dict[str, list[float]] = {}
    steps = range(schedule.steps)
    if show_progress:
        from tqdm.auto import tqdm

        steps = tqdm(steps, desc=label, unit="step")
    started = time.perf_counter()
    if selection is not None and selection.enabled:
        selection.evaluate(0)
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
        if selection is not None and selection.due(step + 1, schedule.steps):
            selection.evaluate(step + 1)
    seconds = time.perf_counter() - started
    eval_seconds = selection.eval_seconds if selection is not None else 0.0
    info = {
        "steps": schedule.steps,
        "train_seconds": round(seconds, 2),
        "seconds_per_step": round((seconds - eval_seconds) / max(1, schedule.steps), 3),
        "loss_log": loss_log(history),
    }
    if selection is not None:
        selection.restore_best()
        info.update(selection.info(schedule.steps))
    return info


def loss_log(history: dict[str, list[float]], points: int = LOG_POINTS) -> list[dict[str, float]]:
    """Mean of each loss over `points` equal stretches of training, each entry at the stretch's last step."""
    steps = len(next(iter(history.values()), []))
    size = max(1, math.ceil(steps / points))
    return [
        {"step": min(start + size, steps), **{name: round(sum(v[start : start + size]) / len(v[start : start + size]), 4)
                                             for name, v in history.items()}}
        for start in range(0, steps, size)
    ]
