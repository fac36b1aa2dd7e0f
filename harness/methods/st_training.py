"""Training for the sentence-transformers methods (`contrastive`, `lora`, `heal`): base model, LoRA, trainer, saving.

The three differ only in their loss, their dataset and their batch sampler; everything else lives
here so they compare like for like. The causal-LM methods follow the same contract in
`harness.methods.causal_training` (same config vocabulary, dev selection and `train_info` keys):

* the sentence-transformers v6 trainer (`SentenceTransformerTrainer`) runs `max_steps` optimiser
  steps of `train_batch_size` examples with AdamW, linear warm-up and decay;
* model selection on dev nDCG@10 every `eval_steps` steps: `harness.methods.selection`; with
  `patience = n` training stops after n evaluations in a row without a new best, and
  `dev_cache_untrained` (on by default, not hashed: same numbers) lets the step-0 evaluation (the
  untouched base model, the same for contrastive, lora and heal) reuse the embedding cache;
* `length_grouped_batches = true` (pair datasets only): duplicate-free batches of rows of similar
  token length (`harness.methods.length_batches`), so less of each step is padding;
* precision: `precision` is one of auto|fp32|bf16 as in `harness.device.use_bf16`, applied to
  training (the trainer's bf16 autocast) and to encoding. On CPU, bf16 autocast is only
  worth it where measured faster (see the baseline tomls for the measurement);
* the fitted model is saved in sentence-transformers format under `run_dir/model` (an adapter
  folder for LoRA, whose base is the local folder the model came from), so it reloads offline
  with `SentenceTransformer(path)`.

`train_batch_size` was once `batch_size`: it is hashed under that name (`harness.config_fields.stored_as`).
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

import torch
from transformers import TrainerCallback
from transformers.trainer_callback import PrinterCallback

from harness import atomic
from harness.config_fields import added_later, speed_only, stored_as
from harness.device import is_main_process, use_bf16
from harness.encoders import (
    CachingEncoder,
    EncodeSettings,
    SentenceTransformerEncoder,
    encode_settings_of,
    load_sentence_transformer,
    settings_fingerprint,
)
from harness.errors import HarnessError
from harness.methods.base import FitContext, Fitted, MethodConfig
from harness.methods.selection import DevSelection, dev_scores
from harness.models import model_fingerprint, resolve_model_path
from harness.task import Task

# Linear-layer names of the attention projections, per architecture family, tried in order.
LORA_TARGET_FAMILIES = (("query", "key", "value"), ("q", "k", "v"), ("q_proj", "k_proj", "v_proj"), ("Wqkv",))


@dataclass(frozen=True)
class TrainConfig(MethodConfig):
    """Hyper-parameters every sentence-transformers fine-tuning method shares; methods subclass it with their own."""

    model: str = "minilm"  # alias of a packaged model or a local sentence-transformers folder
    max_seq_length: int = 128
    train_batch_size: int = stored_as("batch_size", 32)  # training examples per step (per process under torchrun)
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
    patience: int = added_later(0)  # stop after this many dev evaluations in a row without a new best; 0 = run all max_steps
    dev_cache_untrained: bool = speed_only(True)  # step-0 dev embeddings via the embedding cache (same numbers; off without one)
    length_grouped_batches: bool = added_later(False)  # NO_DUPLICATES batches of similar length (changes batch composition)

    def expected_cost(self) -> int:
        return self.max_steps * self.train_batch_size

    def encode_settings(self, show_progress: bool = True) -> EncodeSettings:
        return encode_settings_of(self, show_progress)


@dataclass(frozen=True)
class LoraFields:
    """A peft LoRA adapter on the attention projections; empty targets = detect from module names."""

    lora_rank: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.1
    lora_target_modules: tuple = ()


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
    """Freeze the model and add a trainable LoRA adapter in place; returns the target module names."""
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


def dev_selection(model, task: Task, config: TrainConfig, context: FitContext) -> DevSelection:
    # never compiled: the weights change between dev evaluations
    settings = replace(config.encode_settings(show_progress=False), compile=False)
    encoder = SentenceTransformerEncoder(model, settings, context.device)
    untrained = None
    if config.dev_cache_untrained and context.embedding_cache is not None:
        # at step 0 every method here scores the base model itself (a fresh LoRA adapter adds exactly zero),
        # keyed like `frozen` keys its embeddings: model files, device and encode settings
        fingerprint = settings_fingerprint(f"{model_fingerprint(resolve_model_path(config.model))}:{context.device}", settings)
        cached = CachingEncoder(encoder, fingerprint, context.embedding_cache)
        untrained = lambda: dev_scores(cached, task, config.dev_max_queries)  # noqa: E731
    return DevSelection(model, lambda: dev_scores(encoder, task, config.dev_max_queries), task, config.eval_steps,
                        patience=config.patience, score_untrained=untrained)


class SelectionCallback(TrainerCallback):
    """Runs a `DevSelection` from the trainer: dev at step 0 and whenever due."""

    def __init__(self, selection: DevSelection):
        self.selection = selection

    def on_train_begin(self, args, state, control, **kwargs):
        if self.selection.enabled:
            self.selection.evaluate(0)

    def on_step_end(self, args, state, control, **kwargs):
        if self.selection.due(state.global_step, state.max_steps):
            self.selection.evaluate(state.global_step)
            if self.selection.should_stop(state.global_step):
                control.should_training_stop = True


def training_arguments(config: TrainConfig, context: FitContext, batch_sampler: Any):
    from sentence_transformers.sentence_transformer.training_args import SentenceTransformerTrainingArguments

    return SentenceTransformerTrainingArguments(
        output_dir=str(context.run_dir / "trainer"),
        max_steps=config.max_steps,
        per_device_train_batch_size=config.train_batch_size,
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


def batches(model, dataset, config: TrainConfig, batch_sampler: Any) -> Any:
    """The method's batch sampler, or its length-grouped form where `length_grouped_batches` asks for one."""
    from sentence_transformers.base.sampler import BatchSamplers

    from harness.methods.length_batches import LengthGroupedNoDuplicatesSampler, row_lengths

    if not config.length_grouped_batches:
        return batch_sampler
    if batch_sampler != BatchSamplers.NO_DUPLICATES:
        raise HarnessError("length_grouped_batches applies to pair datasets with duplicate-free batches (contrastive, lora); "
                           "heal batches come from its hierarchy sampler")
    lengths = row_lengths(dataset, model.tokenizer, config.max_seq_length)
    return partial(LengthGroupedNoDuplicatesSampler, lengths=lengths)


def train(model, loss, dataset, task: Task, config: TrainConfig, context: FitContext, batch_sampler: Any) -> dict[str, Any]:
    """Run the trainer, restore the dev-best weights, and return what happened as plain data."""
    from sentence_transformers.sentence_transformer.trainer import SentenceTransformerTrainer

    batch_sampler = batches(model, dataset, config, batch_sampler)
    selection = dev_selection(model, task, config, context)
    trainer = SentenceTransformerTrainer(
        model=model,
        args=training_arguments(config, context, batch_sampler),
        train_dataset=dataset,
        loss=loss,
        callbacks=[SelectionCallback(selection)],
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
        "processes": trainer.args.world_size,  # > 1 under torchrun (DDP): train_batch_size is per process
        "train_rows": len(dataset),
        "train_seconds": round(wall, 2),
        "seconds_per_step": round((wall - selection.eval_seconds) / max(steps, 1), 3),
        "bf16": use_bf16(config.precision, context.device),
        **selection.info(steps),
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
