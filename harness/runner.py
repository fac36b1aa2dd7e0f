"""task x baseline x seed -> fit -> retrieve -> score -> result file. The runner never knows which method it runs."""

from __future__ import annotations

import random
import resource
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from harness.baselines import Baseline
from harness.device import is_main_process, process_rank, resolve_device, set_threads
from harness.methods.base import FitContext, Fitted
from harness.metrics import Evaluation, score_all
from harness.paths import default_results_dir, embedding_cache_dir, runs_dir
from harness.results import RUN_FILE_DEPTH, Result, ResultKey, environment_info, git_commit, write_result
from harness.search import Run, dense_search
from harness.task import Task


@dataclass(frozen=True)
class RunSettings:
    seeds: tuple[int, ...] = (0,)
    device: str = "auto"
    threads: int | None = None
    results_dir: Path = field(default_factory=default_results_dir)
    overwrite: bool = False
    top_k: int = 100
    show_progress: bool = True
    command: str = ""
    split: str = "test"
    cache_embeddings: bool = True
    generator: str | None = None  # opt-in: a causal LM answers test queries from their top-k contexts
    generator_k: int = 3
    generator_max_queries: int | None = 100  # seeded sample; ~6 s per answer with SmolLM2 on one CPU core
    nli_model: str | None = None  # local NLI cross-encoder folder for the NLI support score

    def answer_settings(self):
        from harness.answer_results import AnswerSettings

        return AnswerSettings(generator=self.generator, k=self.generator_k, max_queries=self.generator_max_queries,
                              nli_model=self.nli_model)


@dataclass
class Retrieval:
    """A run plus, for dense methods, the embeddings behind it (the hierarchy metrics probe them)."""

    run: Run
    doc_ids: list[str] = field(default_factory=list)
    doc_vectors: np.ndarray | None = None
    query_ids: list[str] = field(default_factory=list)
    query_vectors: np.ndarray | None = None


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def retrieve(task: Task, fitted: Fitted, split: str, top_k: int) -> Run:
    return retrieve_with_embeddings(task, fitted, split, top_k).run


def retrieve_with_embeddings(task: Task, fitted: Fitted, split: str, top_k: int) -> Retrieval:
    queries = task.split_queries(split)
    retriever = fitted.retriever
    if hasattr(retriever, "search"):
        return Retrieval(retriever.search(queries, top_k))
    return Retrieval(*dense_search(retriever, {d: doc.full_text for d, doc in task.corpus.items()}, queries, top_k))


def score(task: Task, retrieval: Retrieval, split: str, seed: int) -> tuple[dict[str, float], dict[str, float]]:
    """Every registered metric family's metrics in one flat dict, and the main score per query."""
    evaluation = Evaluation(task, split, retrieval.run, seed, retrieval.doc_ids, retrieval.doc_vectors,
                            retrieval.query_ids, retrieval.query_vectors)
    scores = score_all(evaluation)
    return scores, {qid: row[task.main_score] for qid, row in evaluation.per_query.items()}


def dataset_revision(task: Task) -> str:
    """What a result records as its corpus: a --task-dir folder's content checksum, else the built corpus file's."""
    revision = task.metadata.get("revision") or task.metadata.get("build", {}).get("checksums", {}).get("corpus.jsonl", "local")
    return revision[:12]


def result_key(task: Task, baseline: Baseline, seed: int) -> ResultKey:
    return ResultKey(
        task=task.name,
        baseline=baseline.name,
        model=baseline.model_slug,
        config_hash=baseline.config_hash,
        profile=task.profile,
        seed=seed,
    )


def embedding_cache_use(retriever) -> dict[str, int] | None:
    """Cache hits, misses and corrupt entries recomputed, so a result says where its embeddings came
    from; None when the retriever has no embedding cache (BM25, a trained model, or the cache turned off)."""
    cache_use = getattr(retriever, "cache_use", None)
    return cache_use() if callable(cache_use) else None


def _log(message: str) -> None:
    print(f"[harness] {message}", file=sys.stderr, flush=True)


def run_one(task: Task, baseline: Baseline, seed: int, settings: RunSettings) -> Path:
    key = result_key(task, baseline, seed)
    path = key.json_path(settings.results_dir)
    if path.exists() and not settings.overwrite:
        _log(f"skip {task.name}/{baseline.name}/seed{seed}: {path} exists (use --overwrite to redo)")
        return path
    device = resolve_device(settings.device)
    set_threads(settings.threads)
    seed_everything(seed)
    _log(f"run {task.name} ({task.profile}) / {baseline.name} [{baseline.method} {baseline.config_hash}] / seed {seed} on {device}")
    context = FitContext(
        run_dir=runs_dir() / task.name / baseline.name / f"{key.model}__{key.config_hash}__{key.profile}__seed{seed}",
        seed=seed,
        device=device,
        show_progress=settings.show_progress,
        embedding_cache=embedding_cache_dir() if settings.cache_embeddings else None,
    )
    started = time.perf_counter()
    fitted = baseline.instantiate().fit(task, baseline.config, context)
    fit_seconds = time.perf_counter() - started
    if not is_main_process():  # torchrun: every rank trains (DDP); rank 0 alone scores and writes
        _log(f"rank {process_rank()}: trained {task.name}/{baseline.name}/seed{seed}; rank 0 writes {path}")
        return path
    retrieval = retrieve_with_embeddings(task, fitted, settings.split, settings.top_k)
    scores, per_query = score(task, retrieval, settings.split, seed)
    from harness.metrics.rag import branch_outcomes

    generation, answer_outcomes = None, {}
    if settings.generator:
        from harness.answer_results import generation_scores

        generated, generation = generation_scores(task, settings.split, retrieval.run, settings.answer_settings(), device,
                                                  path.with_suffix(".answers.jsonl"))
        scores.update(generated.scores)
        answer_outcomes = generated.per_query
    eval_seconds = time.perf_counter() - started - fit_seconds
    result = Result(
        key=key,
        main_score=task.main_score,
        scores=scores,
        evaluation_time=eval_seconds,
        dataset_revision=dataset_revision(task),
        split=settings.split,
        per_query=per_query,
        per_query_other={**branch_outcomes(task, settings.split, retrieval.run), **answer_outcomes},
        run_info={
            "method": baseline.method,
            "config": baseline.config_dict,
            "config_file": str(baseline.path.name) if baseline.path else None,
            "command": settings.command,
            "git_commit": git_commit(),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "wall_time_s": round(time.perf_counter() - started, 3),
            "fit_time_s": round(fit_seconds, 3),
            "peak_memory_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "peak_gpu_memory_mb": round(torch.cuda.max_memory_allocated(device) / 2**20, 1) if device.startswith("cuda") else None,
            "n_queries": len(task.qrels[settings.split]),
            "n_corpus": len(task.corpus),
            "top_k": settings.top_k,
            "run_file_depth": RUN_FILE_DEPTH,
            "embedding_cache": embedding_cache_use(fitted.retriever),
            # dev selection kept the untouched model: the leaderboard marks such rows (harness.leaderboard.untrained)
            "untrained": bool(fitted.train_info.get("trained")) and fitted.train_info.get("selected_step") == 0,
            **({"generation": {**generation, "command": settings.command}} if generation else {}),
        },
        train_info=fitted.train_info,
        meta_info={**environment_info(device), "task": task.metadata},
    )
    written = write_result(result, retrieval.run, settings.results_dir)
    _log(f"done {task.name}/{baseline.name}/seed{seed}: {task.main_score}={scores[task.main_score]:.4f} -> {written}")
    model_path = fitted.train_info.get("model_path") or fitted.train_info.get("adapter")
    if model_path:
        _log(f"model: {model_path} (self-contained copy: harness export-model {written} DEST)")
    return written
