"""`harness export --mteb DIR`: result files in mteb's results layout, loadable by `mteb.TaskResult`.

Layout: DIR/<model name>/<revision>/<TaskName>.json, where the model name is
`harness__<baseline>-<model>` and the revision `<config hash>-<profile>-seed<seed>`, so runs that
differ in config, profile or seed never collide (mteb's own cache keys results the same way).
"""

from __future__ import annotations

import json
from pathlib import Path

from harness import atomic
from harness.mteb_task import mteb_task_name
from harness.results import load_results

MTEB_KEYS = ("dataset_revision", "task_name", "mteb_version", "scores", "evaluation_time", "kg_co2_emissions")


def export_mteb(results_dir: Path, out: Path) -> list[Path]:
    written = []
    for result in load_results(results_dir):
        data = result.to_json()
        record = {key: data[key] for key in MTEB_KEYS}
        record["task_name"] = mteb_task_name(result.key.task)
        key = result.key
        path = out / f"harness__{key.baseline}-{key.model}" / f"{key.config_hash}-{key.profile}-seed{key.seed}" / f"{record['task_name']}.json"
        atomic.write_text(path, json.dumps(record, indent=2) + "\n")
        written.append(path)
    return written
