"""Shared plumbing for the fine-tuning methods: base model, LoRA adapter, trainer, dev selection, saving.

`contrastive`, `lora` and `heal` differ only in their loss, their dataset and their batch
sampler; everything else lives here so the three compare like for like:

* the sentence-transformers v6 trainer (`SentenceTransformerTrainer`) runs a fixed number of
  optimiser steps (`max_steps`) with AdamW, linear warm-up and decay;
* model selection: the dev split's nDCG@10 is measured with the harness's own encoder, exact
  search and pytrec_eval metrics before training (step 0) and every `eval_steps` steps; the best
  trainable weights are kept in memory and restored at the end, so the step-0 model wins when
  training does not help. The whole curve goes into `train_info`. Only the dev split is read;
  a task without dev qrels keeps the last step;
* precision: `precision` is one of auto|fp32|bf16 as in `harness.device.use_bf16`, applied to
  training (the trainer's bf16 autocast) and to encoding. On CPU, bf16 autocast is only
  worth it where measured faster (see the baseline tomls for the measurement);
* the fitted model is saved in sentence-transformers format under `run_dir/model` (an adapter
  folder for LoRA, whose base is the local folder the model came from), so it reloads offline
  with `SentenceTransformer(path)`.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from transformers import TrainerCallback
from transformers.trainer_callback import PrinterCallback

from harness import atomic
from harness.device import is_main_process, use_bf16
from harness.encoders import EncodeSettings, SentenceTransformerEncoder, load_sentence_transformer
from harness.config_fields import added_later
from harness.errors import HarnessError
from harness.methods.base import FitContext, Fitted
from harness.metrics.retrieval import retrieval_scores
from harness.models import resolve_model_path
from harness.search import exact_search
from harness.task import Task

SELECTION_METRIC = "ndcg_at_10"
CURVE_METRICS = ("ndcg_at_10", "mrr_at_10", "recall_at_10")
# Linear-layer names of the attention projections, per architecture family, tried in order.
LORA_TARGET_FAMILIES = (("query", "key", "value"), ("q", "k", "v"), ("q_proj", "k_proj", "v_proj"), ("Wqkv",))


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters every fine-tuning method shares; methods subclass it with their own."""

    model: str = "minilm"  # alias of a packaged model or a local sentence-transformers folder
    max_seq_length: int = 128
    batch_size: int = 32
    learning_rate: float = 5e-5
    max_steps: int = 100
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    precision: str = "auto"  # auto | fp32 | bf16, for training and encoding
    eval_steps: int = 50  # dev nDCG@10 every this many steps (and at step 0); 0 = no selection
    dev_max_queries: int = 0  # dev queries used for selection, 0 = all
    logging_steps: int = 10
    encode_batch_size: int = 64
    query_prefix: str = ""
    document_prefix: str = ""
    compile: bool = added_later(False)  # torch.compile the trained model for test encoding only (not dev selection)

    def encode_settings(self, show_progress: bool) -> EncodeSettings:
        return EncodeSettings(
            batch_size=self.encode_batch_size,
            max_seq_length=self.max_seq_length,
            precision=self.precision,
            query_prefix=self.query_prefix,
            document_prefix=self.document_prefix,
            show_progress=show_progress,
            compile=self.compile,
        )


@dataclass(frozen=True)
class LoraFields:
    """A peft LoRA adapter on the attention projections; empty targets = detect from module names."""

    lora_rank: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.1
    lora_target_modules: tuple = ()


def require_train_split(task: Task) -> None:
    if not task.qrels.get("train"):
        raise HarnessError(f"task {task.name!r} has no train qrels: fine-tuning methods need qrels/train.tsv")


def load_base_model(config: TrainConfig, device: str):
    return load_sentence_transformer(resolve_model_path(config.model), device, config.max_seq_length)


def lora_targets(model, requested: tuple = ()) -> tuple[str, ...]:
    """The requested module names, or the first known family of attention projections the model has."""
    linear_names = {name.rsplit(".", 1)[-1] for name, module in model.named_modules() if isinstance(module, torch.nn.Linear)}
    if requested:
        missing = sorted(set(requested) - linear_names)
        if missing:
            raise HarnessError(f"lora_target_modules {missing} are not linear layers of the model (it has: {', '.join(sorted(linear_names))})")
        return tuple(requested)
    for family in LORA_TARGET_FAMILIES:
        if set(family) <= linear_names:
            return family
    raise HarnessError(f"cannot tell the attention projections of this model; set lora_target_modules (linear layers: {', '.join(sorted(linear_names))})")


def add_lora(model, config: LoraFields) -> tuple[str, ...]:
    """Freeze the model and add a trainable LoRA adapter; returns the target module names."""
    from peft import LoraConfig, TaskType

    targets = lora_targets(model, tuple(config.lora_target_modules))
    model.add_adapter(
        LoraConfig(
            task_type=TaskType.FEATURE_EXTRACTION,
            r=config.lora_rank,
            lora_alpha=config.lora_alpha,
            lora_dropout=config.lora_dropout,
            target_modules=list(targets),
        )
    )
    return targets


def dev_scores(model, task: Task, config: TrainConfig, device: str) -> dict[str, float]:
    """The dev split scored exactly as the runner scores test: encode, exact search, pytrec_eval."""
    queries = task.split_queries("dev")
    if config.dev_max_queries:
        queries = dict(sorted(queries.items())[: config.dev_max_queries])
    # never compiled: the weights change between dev evaluations
    encoder = SentenceTransformerEncoder(model, replace(config.encode_settings(show_progress=False), compile=False), device)
    doc_ids, query_ids = list(task.corpus), list(queries)
    doc_vectors = encoder.encode([task.corpus[d].full_text for d in doc_ids], "document")
    query_vectors = encoder.encode([queries[q] for q in query_ids], "query")
    run = exact_search(query_ids, query_vectors, doc_ids, doc_vectors, k=10)
    return retrieval_scores({q: task.qrels["dev"][q] for q in query_ids}, run, k_values=(1, 10))


class DevSelection(TrainerCallback):
    """Scores dev at step 0 and every `eval_steps`; remembers the best trainable weights."""

    def __init__(self, model, task: Task, config: TrainConfig, device: str):
        self.model, self.task, self.config, self.device = model, task, config, device
        self.curve: list[dict[str, float]] = []
        self.best_step, self.best_score, self.best_state = -1, float("-inf"), None
        self.eval_seconds = 0.0

    @property
    def enabled(self) -> bool:
        return self.config.eval_steps > 0 and bool(self.task.qrels.get("dev"))

    def evaluate(self, step: int) -> None:
        started = time.perf_counter()
        scores = dev_scores(self.model, self.task, self.config, self.device)
        self.eval_seconds += time.perf_counter() - started
        self.curve.append({"step": step, **{k: round(scores[k], 6) for k in CURVE_METRICS}})
        if scores[SELECTION_METRIC] > self.best_score:
            self.best_step, self.best_score = step, scores[SELECTION_METRIC]
            self.best_state = {n: p.detach().to("cpu", copy=True) for n, p in self.model.named_parameters() if p.requires_grad}

    def on_train_begin(self, args, state, control, **kwargs):
        if self.enabled:
            self.evaluate(0)

    def on_step_end(self, args, state, control, **kwargs):
        if self.enabled and (state.global_step % self.config.eval_steps == 0 or state.global_step == state.max_steps):
            self.evaluate(state.global_step)

    def restore_best(self) -> None:
        if self.best_state is None:
            return
        parameters = dict(self.model.named_parameters())
        with torch.no_grad():
            for name, value in self.best_state.items():
                parameters[name].copy_(value.to(parameters[name].device))


def training_arguments(config: TrainConfig, context: FitContext, batch_sampler: Any):
    from sentence_transformers.sentence_transformer.training_args import SentenceTransformerTrainingArguments

    return SentenceTransformerTrainingArguments(
        output_dir=str(context.run_dir / "trainer"),
        max_steps=config.max_steps,
        per_device_train_batch_size=config.batch_size,
        learning_rate=config.learning_rate,
        warmup_steps=round(config.warmup_ratio * config.max_steps),
        weight_decay=config.weight_decay,
        lr_scheduler_type="linear",
        bf16=use_bf16(config.precision, context.device),
        use_cpu=context.device == "cpu",
        batch_sampler=batch_sampler,
        seed=context.seed,
        data_seed=context.seed,
        logging_steps=config.logging_steps,
        save_strategy="no",
        eval_strategy="no",
        report_to="none",
        disable_tqdm=not context.show_progress,
        dataloader_drop_last=False,
    )


def train(model, loss, dataset, task: Task, config: TrainConfig, context: FitContext, batch_sampler: Any) -> dict[str, Any]:
    """Run the trainer, restore the dev-best weights, and return what happened as plain data."""
    from sentence_transformers.sentence_transformer.trainer import SentenceTransformerTrainer

    selection = DevSelection(model, task, config, context.device)
    trainer = SentenceTransformerTrainer(
        model=model,
        args=training_arguments(config, context, batch_sampler),
        train_dataset=dataset,
        loss=loss,
        callbacks=[selection],
    )
    if not context.show_progress:  # quiet means quiet: the losses are in trainer.state.log_history anyway
        trainer.remove_callback(PrinterCallback)
    started = time.perf_counter()
    trainer.train()
    wall = time.perf_counter() - started
    selection.restore_best()
    steps = trainer.state.global_step
    return {
        "trained": True,
        "steps": steps,
        "processes": trainer.args.world_size,  # > 1 under torchrun (DDP): batch_size is per process
        "train_rows": len(dataset),
        "train_seconds": round(wall, 2),
        "seconds_per_step": round((wall - selection.eval_seconds) / max(steps, 1), 3),
        "dev_eval_seconds": round(selection.eval_seconds, 2),
        "bf16": use_bf16(config.precision, context.device),
        "selected_step": selection.best_step if selection.best_state is not None else steps,
        "dev_curve": selection.curve,
        "loss_log": [
            {k: (round(v, 6) if isinstance(v, float) else v) for k, v in entry.items()}
            for entry in trainer.state.log_history
            if "loss" in entry
        ],
    }


def save_model(model, run_dir: Path) -> Path:
    """Write the model (or adapter) atomically to `run_dir/model`, replacing an earlier run's."""
    final = run_dir / "model"
    if final.exists():  # a rerun (--overwrite) must not keep the previous run's weights
        shutil.rmtree(final)
    with atomic.directory(final) as scratch:
        model.save_pretrained(str(scratch), create_model_card=False)
    return final


def finish(model, config: TrainConfig, context: FitContext, train_info: dict[str, Any]) -> Fitted:
    """Save (rank 0 only under torchrun), then wrap the trained model as the encoder the runner scores."""
    path = save_model(model, context.run_dir) if is_main_process() else context.run_dir / "model"
    encoder = SentenceTransformerEncoder(model, config.encode_settings(context.show_progress), context.device)
    return Fitted(encoder, {**train_info, "model_path": str(path)})

