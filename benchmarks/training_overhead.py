"""Training speed of the harness against a raw sentence-transformers script, in one process.

Prints wall times and ratios for:
  epoch     one epoch of `contrastive` (harness Contrastive.fit, dev selection off) against a raw
            SentenceTransformerTrainer + MultipleNegativesRankingLoss script on the same pairs,
            batch sampler, precision and step count; both include loading and saving the model
  step      HEAL's seconds per optimiser step against MNRL's at the same texts per step
            (heal train_batch_size = 2 x contrastive train_batch_size: 64 rows against 32 pairs), from the
            trainer's own timing with dev selection off; tokens per step are printed beside it,
            because HEAL batches hold mostly short queries and MNRL batches one document per pair

    python benchmarks/training_overhead.py --task cyber --pairs 640 --heal-steps 20 --threads 2
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def subset_task(task, pairs: int):
    """The task with only its first train queries, up to `pairs` positive (query, document) pairs."""
    kept, count = {}, 0
    for qid in sorted(task.qrels["train"]):
        positives = {d: r for d, r in task.qrels["train"][qid].items() if r > 0}
        if count + len(positives) > pairs:
            break
        kept[qid], count = positives, count + len(positives)
    return dataclasses.replace(task, qrels={**task.qrels, "train": kept}), count


def harness_epoch(task, config) -> float:
    from harness.methods.base import FitContext
    from harness.methods.contrastive import Contrastive

    context = FitContext(run_dir=Path(tempfile.mkdtemp()), seed=0, device="cpu", show_progress=False)
    started = time.perf_counter()
    Contrastive().fit(task, config, context)
    return time.perf_counter() - started


def raw_epoch(task, config) -> float:
    """What a user would write with sentence-transformers alone, with the harness's settings."""
    from datasets import Dataset
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.base.sampler import BatchSamplers
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
    from sentence_transformers.sentence_transformer.trainer import SentenceTransformerTrainer
    from sentence_transformers.sentence_transformer.training_args import SentenceTransformerTrainingArguments

    from harness.device import use_bf16
    from harness.models import resolve_model_path

    scratch = Path(tempfile.mkdtemp())
    started = time.perf_counter()
    model = SentenceTransformer(str(resolve_model_path(config.model)), device="cpu")
    model.max_seq_length = config.max_seq_length
    anchors, positives = [], []
    for qid, docs in task.qrels["train"].items():
        for did in sorted(docs):
            anchors.append(task.queries[qid])
            positives.append(task.corpus[did].full_text)
    args = SentenceTransformerTrainingArguments(
        output_dir=str(scratch / "trainer"), max_steps=config.max_steps, per_device_train_batch_size=config.train_batch_size,
        learning_rate=config.learning_rate, warmup_steps=round(config.warmup_ratio * config.max_steps),
        weight_decay=config.weight_decay, lr_scheduler_type="linear", bf16=use_bf16(config.precision, "cpu"),
        use_cpu=True, batch_sampler=BatchSamplers.NO_DUPLICATES, seed=0, data_seed=0, logging_steps=config.logging_steps,
        save_strategy="no", eval_strategy="no", report_to="none", disable_tqdm=True,
    )
    trainer = SentenceTransformerTrainer(model=model, args=args, loss=MultipleNegativesRankingLoss(model),
                                         train_dataset=Dataset.from_dict({"anchor": anchors, "positive": positives}))
    trainer.train()
    model.save_pretrained(str(scratch / "model"))
    return time.perf_counter() - started


def step_seconds(method, task, config) -> float:
    from harness.methods.base import FitContext

    context = FitContext(run_dir=Path(tempfile.mkdtemp()), seed=0, device="cpu", show_progress=False)
    return method.fit(task, config, context).train_info["seconds_per_step"]


def tokens_per_step(task, contrastive_config, heal_config, steps: int) -> tuple[float, float]:
    """Mean tokens per batch: MNRL's pairs (query + document) and HEAL's sampled rows."""
    from transformers import AutoTokenizer

    from harness.methods.hierarchy_sampler import HierarchyBatchSampler
    from harness.methods.heal import label_table
    from harness.models import resolve_model_path

    tokenizer = AutoTokenizer.from_pretrained(str(resolve_model_path(contrastive_config.model)))

    def length(text: str) -> int:
        return len(tokenizer(text, truncation=True, max_length=contrastive_config.max_seq_length)["input_ids"])

    pairs = task.train_pairs("train")
    pair_tokens = sum(length(q) + length(d) for q, d in pairs[:2000]) / min(len(pairs), 2000)
    table = label_table(task, heal_config)
    sampler = HierarchyBatchSampler(list(range(len(table.texts))), heal_config.train_batch_size, instances=table.instances,
                                    members_per_leaf=heal_config.members_per_leaf)
    batches = [batch for batch, _ in zip(sampler, range(steps))]
    heal_tokens = sum(length(table.texts[row]) for batch in batches for row in batch) / len(batches)
    return pair_tokens * contrastive_config.train_batch_size, heal_tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", default="cyber")
    parser.add_argument("--pairs", type=int, default=640, help="train pairs in the epoch (batch 32: 20 steps)")
    parser.add_argument("--heal-steps", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2, help="alternating repeats of the epoch; the minimum is kept")
    args = parser.parse_args()

    import torch

    from harness.catalog import load_task
    from harness.methods.contrastive import Contrastive, ContrastiveConfig
    from harness.methods.heal import HEAL, HEALConfig

    torch.set_num_threads(args.threads)
    task = load_task(args.task, profile="small")
    epoch_task, pairs = subset_task(task, args.pairs)
    base = ContrastiveConfig(eval_steps=0)
    epoch_config = dataclasses.replace(base, max_steps=math.ceil(pairs / base.train_batch_size))
    print(f"task {task.name}: epoch of {pairs} pairs = {epoch_config.max_steps} steps of {base.train_batch_size}; "
          f"max_seq_length {base.max_seq_length}, precision {base.precision}, {args.threads} threads")

    best = {"harness": float("inf"), "raw": float("inf")}
    for _ in range(args.repeats):
        best["raw"] = min(best["raw"], raw_epoch(epoch_task, epoch_config))
        best["harness"] = min(best["harness"], harness_epoch(epoch_task, epoch_config))
    print(f"raw epoch      {best['raw']:8.2f} s")
    print(f"harness epoch  {best['harness']:8.2f} s")
    print(f"ratio harness/raw epoch    {best['harness'] / best['raw']:.3f}   (target <= 1.10)")

    step_config = dataclasses.replace(base, max_steps=args.heal_steps)
    heal_config = HEALConfig(eval_steps=0, max_steps=args.heal_steps, train_batch_size=2 * base.train_batch_size, label_source="gold")
    mnrl_step = step_seconds(Contrastive(), task, step_config)
    heal_step = step_seconds(HEAL(), task, heal_config)
    mnrl_tokens, heal_tokens = tokens_per_step(task, step_config, heal_config, args.heal_steps)
    print(f"mnrl step {mnrl_step:6.3f} s ({mnrl_tokens:6.0f} tokens/step); heal step {heal_step:6.3f} s ({heal_tokens:6.0f} tokens/step)")
    print(f"ratio heal/mnrl step       {heal_step / mnrl_step:.3f}   (target <= 1.15)")
    print(f"ratio per token            {(heal_step / heal_tokens) / (mnrl_step / mnrl_tokens):.3f}")


if __name__ == "__main__":
    main()
