"""Evaluation speed of the harness against the raw libraries and against mteb, in one process.

Prints wall times and ratios (harness / reference) for the `frozen` evaluation of a task:
  raw      SentenceTransformer.encode + torch top-k + pytrec_eval on the same texts and settings
  harness  the harness path: Frozen.fit + retrieve + retrieval metrics (cold: no embedding cache)
  full     harness run_one, which also computes the hierarchy and RAG families and writes the result
  mteb     mteb.evaluate on the same task (cold), against harness cold and harness rerun (embedding cache)

    python benchmarks/eval_overhead.py --task cyber --precision fp32 --threads 2
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def timed(function):
    started = time.perf_counter()
    value = function()
    return time.perf_counter() - started, value


def raw_path(task, model_path, max_seq_length, batch_size, precision):
    import pytrec_eval
    import torch
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(model_path), device="cpu")
    model.max_seq_length = max_seq_length
    queries = task.split_queries("test")
    doc_ids, query_ids = list(task.corpus), list(queries)
    context = torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bf16" else torch.no_grad()
    with context:
        docs = model.encode([task.corpus[d].full_text for d in doc_ids], batch_size=batch_size, normalize_embeddings=True, convert_to_tensor=True)
        query_vectors = model.encode([queries[q] for q in query_ids], batch_size=batch_size, normalize_embeddings=True, convert_to_tensor=True)
    scores, indices = torch.topk(query_vectors.float() @ docs.float().T, 100, dim=1)
    run = {q: {doc_ids[i]: float(s) for i, s in zip(indices[r].tolist(), scores[r].tolist())} for r, q in enumerate(query_ids)}
    evaluated = pytrec_eval.RelevanceEvaluator(task.qrels["test"], {"ndcg_cut.10"}).evaluate(run)
    return sum(v["ndcg_cut_10"] for v in evaluated.values()) / len(evaluated)


def harness_path(task, config, cache_dir):
    from harness.methods.base import FitContext
    from harness.methods.frozen import Frozen
    from harness.metrics.retrieval import retrieval_scores
    from harness.runner import retrieve

    context = FitContext(run_dir=Path(tempfile.mkdtemp()), seed=0, device="cpu", show_progress=False, embedding_cache=cache_dir)
    fitted = Frozen().fit(task, config, context)
    return retrieval_scores(task.qrels["test"], retrieve(task, fitted, "test", 100))["ndcg_at_10"]


def full_run(task, baseline, results_dir):
    from harness.runner import RunSettings, run_one

    import json
    settings = RunSettings(results_dir=results_dir, show_progress=False, cache_embeddings=False, overwrite=True)
    return json.loads(run_one(task, baseline, 0, settings).read_text())["scores"]["test"][0]["ndcg_at_10"]


def mteb_path(task, model_path, max_seq_length, batch_size):
    import mteb
    from sentence_transformers import SentenceTransformer

    from harness.mteb_task import to_mteb_task

    model = SentenceTransformer(str(model_path), device="cpu")
    model.max_seq_length = max_seq_length
    result = mteb.evaluate(model, to_mteb_task(task), cache=None, overwrite_strategy="always", show_progress_bar=False,
                           encode_kwargs={"batch_size": batch_size})
    return result.task_results[0].scores["test"][0]["ndcg_at_10"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", default="cyber")
    parser.add_argument("--profile", default="small")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2, help="alternating repeats; the minimum is kept")
    parser.add_argument("--skip-mteb", action="store_true")
    args = parser.parse_args()

    import torch

    from harness.baselines import Baseline
    from harness.catalog import load_task
    from harness.methods.frozen import FrozenConfig
    from harness.models import resolve_model_path

    torch.set_num_threads(args.threads)
    task = load_task(args.task, profile=args.profile)
    config = FrozenConfig(precision=args.precision)
    model_path = resolve_model_path(config.model)
    scratch = Path(tempfile.mkdtemp())
    print(f"task {task.name} ({task.profile}): {len(task.corpus)} docs, {len(task.qrels['test'])} test queries; "
          f"max_seq_length {config.max_seq_length}, batch {config.encode_batch_size}, {args.precision}, {args.threads} threads")

    best: dict[str, float] = {}
    ndcg: dict[str, float] = {}
    paths = {
        "raw": lambda: raw_path(task, model_path, config.max_seq_length, config.encode_batch_size, args.precision),
        "harness": lambda: harness_path(task, config, None),
        "full": lambda: full_run(task, Baseline("frozen", "frozen", config), scratch / "results"),
    }
    if not args.skip_mteb:
        paths["mteb"] = lambda: mteb_path(task, model_path, config.max_seq_length, config.encode_batch_size)
    for _ in range(args.repeats):
        for name, path in paths.items():
            seconds, ndcg[name] = timed(path)
            best[name] = min(best.get(name, float("inf")), seconds)
    cache = scratch / "cache"
    harness_path(task, config, cache)  # fill the embedding cache once
    best["harness rerun"], ndcg["harness rerun"] = timed(lambda: harness_path(task, config, cache))

    for name, seconds in best.items():
        print(f"{name:<14} {seconds:8.2f} s   ndcg_at_10 {ndcg[name]:.5f}")
    print(f"ratio harness/raw          {best['harness'] / best['raw']:.3f}   (target <= 1.10)")
    print(f"ratio full run_one/raw     {best['full'] / best['raw']:.3f}   (adds hierarchy + RAG metrics and writing)")
    if "mteb" in best:
        print(f"ratio harness cold/mteb    {best['harness'] / best['mteb']:.3f}   (target <= 1.00)")
        print(f"ratio harness rerun/mteb   {best['harness rerun'] / best['mteb']:.3f}   (target <= 0.50)")


if __name__ == "__main__":
    main()
