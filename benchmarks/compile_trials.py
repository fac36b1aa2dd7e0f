"""The speed-ups tried for bf16 on CPU besides `compile = true`, and the embeddings they give.

  encode   1,000 cyber texts (max 256 tokens, batch 64): eager bf16 autocast, weights stored in bf16,
           and the harness's `compile = true`; time (best of 2) and the largest 1 - cosine to fp32
  train    `contrastive` for 30 steps on 640 cyber pairs (dev selection off): eager against the
           trainer's `torch_compile` (inductor), seconds per optimiser step

    python benchmarks/compile_trials.py --threads 2
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def best_of_two(encoder, texts) -> tuple[float, object]:
    times, vectors = [], None
    for _ in range(2):
        started = time.perf_counter()
        vectors = encoder.encode(texts, "document")
        times.append(time.perf_counter() - started)
    return min(times), vectors


def encode_trials(task) -> None:
    import numpy as np
    import torch

    from harness.encoders import EncodeSettings, SentenceTransformerEncoder, load_sentence_transformer
    from harness.models import resolve_model_path

    texts = ([d.full_text for d in task.corpus.values()] + list(task.split_queries("test").values()))[:1000]
    load = lambda: load_sentence_transformer(resolve_model_path("minilm"), "cpu", max_seq_length=256)  # noqa: E731
    quiet = dict(show_progress=False)
    reference = SentenceTransformerEncoder(load(), EncodeSettings(precision="fp32", **quiet), "cpu").encode(texts, "document")
    trials = {
        "bf16 autocast (eager)": lambda: SentenceTransformerEncoder(load(), EncodeSettings(precision="bf16", **quiet), "cpu"),
        "bf16 weights (eager)": lambda: SentenceTransformerEncoder(load().to(torch.bfloat16), EncodeSettings(precision="fp32", **quiet), "cpu"),
        "bf16 autocast, compile = true": lambda: SentenceTransformerEncoder(load(), EncodeSettings(precision="bf16", compile=True, **quiet), "cpu"),
    }
    for name, make in trials.items():
        encoder = make()
        encoder.encode(texts[:64], "document")  # warm-up (and the compile)
        seconds, vectors = best_of_two(encoder, texts)
        gap = float(np.max(1 - np.sum(vectors * reference, axis=1)))
        print(f"encode  {name:<32} {seconds:6.2f} s   max 1-cos to fp32 {gap:.1e}")


def train_trials(task) -> None:
    import harness.methods.st_training as training
    from harness.baselines import load_baseline
    from harness.methods.base import FitContext
    from harness.methods.contrastive import Contrastive
    from training_overhead import subset_task

    pairs_task, _ = subset_task(task, 640)
    config = dataclasses.replace(load_baseline("contrastive").config, max_steps=30, eval_steps=0)
    plain = training.training_arguments
    for compiled in (False, True):
        def arguments(config, context, sampler, compiled=compiled):
            args = plain(config, context, sampler)
            if compiled:
                args.torch_compile, args.torch_compile_backend = True, "inductor"
            return args

        training.training_arguments = arguments
        context = FitContext(run_dir=Path(tempfile.mkdtemp()), seed=0, device="cpu", show_progress=False)
        info = Contrastive().fit(pairs_task, config, context).train_info
        print(f"train   {'torch_compile' if compiled else 'eager':<32} {info['seconds_per_step']:.2f} s per step")
    training.training_arguments = plain


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", default="cyber")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--trials", default="encode,train")
    args = parser.parse_args()

    import torch

    from harness.catalog import load_task

    torch.set_num_threads(args.threads)
    task = load_task(args.task, profile="small")
    if "encode" in args.trials:
        encode_trials(task)
    if "train" in args.trials:
        train_trials(task)


if __name__ == "__main__":
    main()
