"""A stored result together with the task it was scored on and its stored ranking, for commands that add
scores to results without refitting (`harness answer`, `harness branch-outcomes`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

from harness.errors import HarnessError
from harness.results import Result, load_results, read_trec_run
from harness.search import Run
from harness.task import Task


def load_stored(path: Path, load_task: Callable[[str], Task], purpose: str) -> tuple[Result, Task, Run]:
    """(the result at `path`, its task loaded by `load_task(profile)`, its run file); a one-line error naming the
    file when the task is another one, its corpus changed since, or the run file is missing (`purpose`: what
    the caller would have done with it)."""
    result = Result.from_json(json.loads(path.read_text(encoding="utf-8")))
    task = load_task(result.key.profile)
    if (task.name, task.profile) != (result.key.task, result.key.profile):
        raise HarnessError(f"{path}: a result of {result.key.task} ({result.key.profile}), "
                           f"not of {task.name} ({task.profile})")
    from harness.runner import dataset_revision

    if dataset_revision(task) != result.dataset_revision:
        raise HarnessError(f"{path}: scored on corpus revision {result.dataset_revision}, but task {task.name} is now "
                           f"{dataset_revision(task)}; rerun the result before {purpose}")
    run_file = path.with_suffix(".trec.gz")
    if not run_file.exists():
        raise HarnessError(f"{path}: its run file {run_file.name} is missing, so there is no ranking for {purpose}")
    return result, task, read_trec_run(run_file)


def stored_result_paths(results_dir: Path, task: str, baselines: list[str] | None, seeds: tuple[int, ...] | None) -> list[Path]:
    """The valid stored results of `task` for these baselines and seeds (None: all; any config hash or model)."""
    found = [r.key.json_path(results_dir) for r in load_results(results_dir)
             if r.key.task == task and (baselines is None or r.key.baseline in baselines)
             and (seeds is None or r.key.seed in seeds)]
    return sorted(found)
