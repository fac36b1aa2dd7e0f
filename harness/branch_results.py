"""Per-query wrong-branch outcomes for stored results: `harness branch-outcomes`.

Results written before the leaderboard had a paired branch test hold the wrong-branch rates only as means.
Their run files rank every test query, so the per-query values (`harness.metrics.rag.branch_outcomes`) are
recomputed from them, no refit, and written into the result only if their means reproduce the stored
`wrong_branch_rate_l*_at_5_on_miss` scores: a run file that does not is an error, nothing written.
"""

from __future__ import annotations

import math
import re
import sys
from dataclasses import replace
from functools import lru_cache
from pathlib import Path
from typing import Callable

from harness.errors import HarnessError
from harness.metrics.rag import BRANCH_TEST_K, BRANCH_TEST_LEVELS, branch_outcomes
from harness.results import write_result_json
from harness.stored_runs import load_stored, stored_result_paths
from harness.task import Task

TOLERANCE = 1e-9  # a mean over the same floats in another order
# the metrics branch_outcomes gives per query
ON_MISS = re.compile(rf"^wrong_branch_rate_l({'|'.join(map(str, BRANCH_TEST_LEVELS))})_at_{BRANCH_TEST_K}_on_miss$")


def add_branch_outcomes(path: Path, load_task: Callable[[str], Task]) -> bool:
    """Add the per-query branch outcomes to the stored result at `path`; False when it holds them already
    (or its task has no labels, so there is nothing to add)."""
    result, task, run = load_stored(path, load_task, "recomputing its branch outcomes")
    outcomes = branch_outcomes(task, result.split, run)
    if all(name in result.per_query_other for name in outcomes):
        return False
    stored_names = {name for name in result.scores if ON_MISS.match(name)}
    for name in sorted(stored_names | set(outcomes)):
        stored, values = result.scores.get(name), outcomes.get(name, {})
        recomputed = math.fsum(values.values()) / len(values) if values else None
        if stored is None or recomputed is None or abs(stored - recomputed) > TOLERANCE:
            raise HarnessError(f"{path}: its run file gives {name} = {recomputed!r}, but the result stores {stored!r}; "
                               "rerun the result instead")
    write_result_json(path, replace(result, per_query_other={**result.per_query_other, **outcomes}))
    return True


def add_branch_outcomes_stored(results_dir: Path, tasks: dict[str, Callable[[str], Task]]) -> list[Path]:
    """`add_branch_outcomes` for every stored result of these tasks (name -> loader by profile)."""
    updated = []
    for name, load in tasks.items():
        load = lru_cache(maxsize=None)(load)
        for path in stored_result_paths(results_dir, name, None, None):
            if add_branch_outcomes(path, load):
                print(f"[harness] branch outcomes added to {path.relative_to(results_dir)}", file=sys.stderr, flush=True)
                updated.append(path)
    return updated
