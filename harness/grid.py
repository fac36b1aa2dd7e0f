"""A grid of runs (task x baseline x seed) on an executor: here one after another, in `--jobs` local
processes (`harness.parallel`), or as Ray tasks (`harness.ray_executor`); each run is `runner.run_one`."""

from __future__ import annotations

from pathlib import Path

from harness.baselines import Baseline
from harness.device import is_main_process
from harness.errors import HarnessError
from harness.parallel import reset_gpu_peak, run_parallel
from harness.progress import GridProgress
from harness.runner import RunSettings, result_key, run_one
from harness.task import Task


def run_benchmark(tasks: list[Task], baselines: list[Baseline], settings: RunSettings, jobs: int = 1,
                  plugins: list[str] = (), executor: str = "local", ray_address: str | None = None) -> list[Path]:
    """Every task x baseline x seed: here, in `jobs` local processes (`harness.parallel`), or as Ray
    tasks on a machine or cluster (`harness.ray_executor`, `executor="ray"`). Progress lines go to stderr
    and a summary table of the grid to stdout at the end (also when a run failed)."""
    units = [(task, baseline, seed) for task in tasks for baseline in baselines for seed in settings.seeds]
    if executor == "ray" and jobs > 1:
        raise HarnessError("--jobs is for the local executor; under --executor ray each run asks Ray for its "
                           "baseline's `resources` and Ray decides how many run at once")
    if executor != "ray" and ray_address:
        raise HarnessError("--ray-address needs --executor ray")
    paths = [result_key(*unit).json_path(settings.results_dir) for unit in units]
    progress = GridProgress(units, paths, workers=jobs if executor != "ray" else len(units))
    for i, path in enumerate(paths):
        if path.exists() and not settings.overwrite:
            progress.skip(i)
    try:
        if executor == "ray":
            from harness.ray_executor import run_on_ray

            return run_on_ray(units, settings, plugins, address=ray_address, progress=progress)
        if jobs > 1 and len(units) > 1:
            return run_parallel(units, settings, min(jobs, len(units)), plugins, progress=progress)
        for i, (task, baseline, seed) in enumerate(units):
            reset_gpu_peak()  # each result's peak GPU memory is its own
            if i not in progress.status:
                progress.start(i)
            try:
                paths[i] = run_one(task, baseline, seed, settings)
            except BaseException:
                progress.finish(i, failed=True)
                raise
            if progress.status.get(i) != "skipped":
                progress.finish(i)
        return paths
    finally:
        if is_main_process():
            print(progress.summary())
