"""Seconds per MNRL training step: the library's loss against `length_buckets = n`, on the packaged tasks.

One process, the same model, batches and optimiser for both: each timed step is forward, backward
and an AdamW step on a batch of `train_batch_size` (query, document) pairs drawn from the task's
train pairs, under the training precision (bf16 autocast where the CPU has bf16 matrix units). The
two losses alternate on every batch (which goes first alternates too), so a machine that slows
down during the run slows both. Printed per task: real and padded tokens per step (one pass per
column against n passes), seconds per step of each, and their ratio.

    python benchmarks/length_buckets.py --steps 8 --buckets 4 --threads 1
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

TASKS = ("cyber", "healthcare", "math", "materials", "cyber-cwe", "healthcare-icd")


def padded_tokens(features: dict, buckets: int) -> int:
    lengths = sorted(features["attention_mask"].sum(dim=1).tolist(), reverse=True)
    if buckets <= 1 or len(lengths) < 2 * buckets:
        return len(lengths) * lengths[0]
    size = -(-len(lengths) // buckets)  # torch.chunk's split
    return sum(len(chunk) * chunk[0] for chunk in (lengths[i:i + size] for i in range(0, len(lengths), size)))


def time_step(model, loss, optimizer, features: list[dict], bf16: bool) -> float:
    import torch

    started = time.perf_counter()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        value = loss([dict(f) for f in features], None)
    value.backward()
    optimizer.step()
    optimizer.zero_grad()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default=",".join(TASKS))
    parser.add_argument("--steps", type=int, default=8, help="timed steps per loss and task (after one warm-up step each)")
    parser.add_argument("--buckets", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    import torch
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    from harness.catalog import load_task
    from harness.device import use_bf16
    from harness.methods.contrastive import ContrastiveConfig, pairs_dataset
    from harness.methods.length_buckets import LengthBucketedMNRL
    from harness.methods.st_training import load_base_model

    torch.set_num_threads(args.threads)
    config = ContrastiveConfig()
    bf16 = use_bf16(config.precision, "cpu")
    model = load_base_model(config, "cpu").train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-9)  # the step's cost, not its effect, is measured
    losses = {"library": MultipleNegativesRankingLoss(model, scale=config.scale),
              "buckets": LengthBucketedMNRL(model, scale=config.scale, length_buckets=args.buckets)}
    print(f"model {config.model}, train_batch_size {config.train_batch_size}, max_seq_length {config.max_seq_length}, "
          f"bf16 {bf16}, {args.threads} thread(s), length_buckets {args.buckets}, {args.steps} steps per loss and task")
    print(f"{'task':15s} {'real tok':>8s} {'padded':>7s} {'bucketed':>8s} {'library s':>9s} {'buckets s':>9s} {'ratio':>6s}")
    ratios = []
    for name in args.task.split(","):
        pairs = pairs_dataset(load_task(name), config)
        rng = random.Random(0)
        seconds = {"library": [], "buckets": []}
        real = padded = bucketed = 0
        for step in range(args.steps + 1):
            rows = rng.sample(range(len(pairs)), config.train_batch_size)
            features = [dict(model.preprocess([pairs[column][i] for i in rows])) for column in ("anchor", "positive")]
            order = ["library", "buckets"] if step % 2 == 0 else ["buckets", "library"]
            for kind in order:
                elapsed = time_step(model, losses[kind], optimizer, features, bf16)
                if step:  # step 0 warms both up
                    seconds[kind].append(elapsed)
            if step:
                real += sum(int(f["attention_mask"].sum()) for f in features)
                padded += sum(padded_tokens(f, 1) for f in features)
                bucketed += sum(padded_tokens(f, args.buckets) for f in features)
        library, buckets = statistics.mean(seconds["library"]), statistics.mean(seconds["buckets"])
        ratios.append(library / buckets)
        print(f"{name:15s} {real // args.steps:8d} {padded // args.steps:7d} {bucketed // args.steps:8d} "
              f"{library:9.2f} {buckets:9.2f} {library / buckets:5.2f}x")
    print(f"geometric mean speed-up: {statistics.geometric_mean(ratios):.2f}x")


if __name__ == "__main__":
    main()
