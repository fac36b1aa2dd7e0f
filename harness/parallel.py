"""`run --jobs N`: independent runs (task x baseline x seed) in N worker processes.

On a few CPU cores, N one-thread processes keep the cores busier than one N-thread process, whose
small-model kernels leave threads idle between them (the whole leaderboard ran at 195% CPU on 2 cores
with --jobs 2; BENCHMARKS.md, "Whole leaderboard").
Workers are spawned (no fork of a process that may hold torch threads) and live for the whole
run; the longest runs (most optimiser steps, then largest corpus) start first so that the last
one to finish is short. Every result is written atomically by its worker, so a failure stops the
queue but keeps what finished.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import replace
from pathlib import Path

from harness.errors import HarnessError

_BLAS_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def threads_per_job(jobs: int, threads: int | None) -> int:
    """`--threads` if given, else the cores shared out evenly (at least one each)."""
    return threads or max(1, (os.cpu_count() or 1) // jobs)


def expected_cost(unit) -> tuple[int, int]:
    """Training examples the config declares (steps x batch), then corpus size: the larger, the earlier it starts."""
    task, baseline, _seed = unit
    return baseline.expected_cost, len(task.corpus)


def _start_worker(plugins: list[str], threads: int) -> None:
    for variable in _BLAS_THREAD_VARIABLES:  # before numpy loads in this process: NMF and BM25 too
        os.environ[variable] = str(threads)
    from harness.registry import load_plugin

    for module in plugins:  # the parent's registrations do not cross a spawn
        load_plugin(module)


def reset_gpu_peak() -> None:
    """Start a run's peak GPU memory (`run_info.peak_gpu_memory_mb`) afresh in a process that ran others before."""
    torch = sys.modules.get("torch")  # never the import: a process that has not touched CUDA has no peak
    if torch is not None and torch.cuda.is_initialized():
        torch.cuda.reset_peak_memory_stats()


def _run_unit(unit, settings) -> Path:
    from harness.runner import run_one

    try:
        reset_gpu_peak()
        return run_one(*unit, settings)
    except HarnessError as exc:  # subclasses with extra constructor arguments do not unpickle
        raise HarnessError(str(exc)) from None


def run_parallel(units: list, settings, jobs: int, plugins: list[str] = (), progress=None) -> list[Path]:
    """Run every unit in `jobs` processes; return result paths in the units' order. The first failure
    cancels the runs not yet started and is raised once the running ones have ended."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise HarnessError("--jobs > 1 cannot be combined with torchrun; use one or the other")
    threads = threads_per_job(jobs, settings.threads)
    settings = replace(settings, threads=threads, show_progress=False)  # interleaved bars are unreadable
    order = sorted(range(len(units)), key=lambda i: expected_cost(units[i]), reverse=True)
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(jobs, mp_context=context, initializer=_start_worker, initargs=(list(plugins), threads)) as pool:
        futures = {pool.submit(_run_unit, units[i], settings): i for i in order}
        results: dict[int, Path] = {}
        for future in as_completed(futures):
            i = futures[future]
            if future.exception() is not None:
                if progress:
                    progress.finish(i, failed=True)
                pool.shutdown(cancel_futures=True)
                raise future.exception()
            results[i] = future.result()
            if progress and progress.status.get(i) != "skipped":
                progress.finish(i)
    return [results[i] for i in range(len(units))]
