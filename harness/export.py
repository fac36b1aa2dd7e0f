"""`harness export --mteb DIR`: result files in mteb's cache layout, loadable as written by
`mteb.ResultCache(DIR).load_results()`.

Layout (mteb's own): DIR/results/<model name as path>/<revision>/<TaskName>.json plus a
`model_meta.json` per revision folder. The model name is `harness/<baseline>-<model>` (on disk
`harness__<baseline>-<model>`) and the revision `<config hash>-<profile>-seed<seed>`, so runs that
differ in config, profile or seed never collide.
"""

from __future__ import annotations

import json
from pathlib import Path

from harness import atomic
from harness.mteb_task import mteb_task_name
from harness.results import Result, load_results

MTEB_KEYS = ("dataset_revision", "task_name", "mteb_version", "scores", "evaluation_time", "kg_co2_emissions")


def model_meta(result: Result) -> dict:
    """mteb's ModelMeta for one harness run, as mteb itself serialises it."""
    from mteb.models.model_meta import ModelMeta

    key = result.key
    meta = ModelMeta.create_empty({
        "name": f"harness/{key.baseline}-{key.model}",
        "revision": f"{key.config_hash}-{key.profile}-seed{key.seed}",
        "languages": ["eng-Latn"],
        "similarity_fn_name": "cosine" if key.model != "lexical" else None,
        "adapted_from": key.model if key.model != "lexical" else None,
        "framework": ["Sentence Transformers"] if key.model != "lexical" else [],
    })
    return meta.to_dict()


def export_mteb(results_dir: Path, out: Path) -> list[Path]:
    written = []
    for result in load_results(results_dir):
        data = result.to_json()
        record = {key: data[key] for key in MTEB_KEYS}
        record["task_name"] = mteb_task_name(result.key.task)
        meta = model_meta(result)
        folder = out / "results" / meta["name"].replace("/", "__") / meta["revision"]
        atomic.write_text(folder / "model_meta.json", json.dumps(meta, indent=2, default=str) + "\n")
        path = folder / f"{record['task_name']}.json"
        atomic.write_text(path, json.dumps(record, indent=2) + "\n")
        written.append(path)
    return written
