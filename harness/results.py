"""Result files: one JSON per (task, baseline, config hash, model, profile, seed), written atomically.

The JSON is an mteb `TaskResult` (task_name, dataset_revision, mteb_version, scores[split] = [{...,
main_score, hf_subset, languages}], evaluation_time, kg_co2_emissions) plus peft-style `run_info`,
`train_info` and `meta_info`. The ranking is saved beside it as a gzipped TREC run file.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import platform
import subprocess
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from harness import atomic
from harness.result_schema import InvalidResult, validate_result
from harness.search import Run

PACKAGES = (
    "harness", "torch", "transformers", "sentence-transformers", "peft", "mteb", "beir",
    "scikit-learn", "numpy", "pandas", "pytrec-eval-terrier", "bm25s",
)


@dataclass(frozen=True)
class ResultKey:
    task: str
    baseline: str
    model: str
    config_hash: str
    profile: str
    seed: int

    def json_path(self, results_dir: Path) -> Path:
        stem = f"{self.model}__{self.config_hash}__{self.profile}__seed{self.seed}"
        return results_dir / self.task / self.baseline / f"{stem}.json"

    def run_path(self, results_dir: Path) -> Path:
        return self.json_path(results_dir).with_suffix(".trec.gz")


@dataclass(frozen=True)
class Result:
    key: ResultKey
    main_score: str
    scores: dict[str, float]  # test-split metrics, mteb names
    evaluation_time: float
    dataset_revision: str
    run_info: dict[str, Any] = field(default_factory=dict)
    train_info: dict[str, Any] = field(default_factory=dict)
    meta_info: dict[str, Any] = field(default_factory=dict)
    split: str = "test"
    per_query: dict[str, float] = field(default_factory=dict)  # main score per test query, for CIs and paired tests
    # other metrics per test query (metric -> query id -> value), e.g. generated-answer outcomes, for their paired tests
    per_query_other: dict[str, dict[str, float]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        block = {**self.scores, "main_score": self.scores[self.main_score], "hf_subset": "default", "languages": ["eng-Latn"]}
        return {
            "task_name": self.key.task,
            "dataset_revision": self.dataset_revision,
            "mteb_version": _version("mteb"),
            "scores": {self.split: [block]},
            "evaluation_time": self.evaluation_time,
            "kg_co2_emissions": None,
            "run_info": {**self.run_info, "key": self.key.__dict__, "main_score": self.main_score},
            "train_info": self.train_info,
            "meta_info": self.meta_info,
            "per_query": {self.main_score: self.per_query, **self.per_query_other},
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Result":
        run_info = dict(data["run_info"])
        key = ResultKey(**run_info.pop("key"))
        main_score = run_info.pop("main_score")
        split, blocks = next(iter(data["scores"].items()))
        scores = {k: v for k, v in blocks[0].items() if isinstance(v, (int, float)) and k != "main_score"}
        per_query = dict(data.get("per_query", {}))
        main_per_query = per_query.pop(main_score, {})
        return cls(key, main_score, scores, data["evaluation_time"], data["dataset_revision"],
                   run_info, data.get("train_info", {}), data.get("meta_info", {}), split, main_per_query, per_query)


RUN_FILE_DEPTH = 20  # enough for every @k <= 10 metric and the RAG proxies; keeps committed results small


def trec_run_text(run: Run, tag: str, depth: int = RUN_FILE_DEPTH) -> str:
    """The top `depth` documents per query, ranked as pytrec_eval ranks them: score, then doc id, both descending.

    Scores are written as `repr(float)`, which reads back to the same float, so the file scores exactly as the run did.
    """
    lines = []
    for qid in sorted(run):
        ranked = sorted(run[qid].items(), key=lambda item: (item[1], item[0]), reverse=True)[:depth]
        lines += [f"{qid} Q0 {doc} {rank} {float(score)!r} {tag}" for rank, (doc, score) in enumerate(ranked, start=1)]
    return "\n".join(lines) + "\n"


def read_trec_run(path: Path) -> Run:
    """A gzipped TREC run as {query id: {doc id: score}}; files written before full-precision scores read too."""
    run: Run = {}
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        for line in handle:
            qid, _, doc, _, score, _ = line.split()
            run.setdefault(qid, {})[doc] = float(score)
    return run


def write_result(result: Result, run: Run, results_dir: Path) -> Path:
    """Run file first, then the JSON: a JSON on disk always has its complete run beside it."""
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0, compresslevel=9) as handle:
        handle.write(trec_run_text(run, result.key.baseline).encode("utf-8"))
    atomic.write_bytes(result.key.run_path(results_dir), buffer.getvalue())
    path = result.key.json_path(results_dir)
    write_result_json(path, result)
    return path


def write_result_json(path: Path, result: Result) -> None:
    """The result's JSON alone, atomically (its run file is already beside it)."""
    atomic.write_text(path, json.dumps(result.to_json(), indent=2, sort_keys=False) + "\n")


@dataclass(frozen=True)
class LoadedResults:
    results: list[Result]
    skipped: list[tuple[Path, str]]  # result files left out, with the reason


def load_results(results_dir: Path) -> list[Result]:
    """The valid results under `results_dir`; `scan_results` also says which files were left out and why."""
    return scan_results(results_dir).results


def scan_results(results_dir: Path) -> LoadedResults:
    """Every result JSON below `results_dir` that passes `validate_result` and lies at its key's path.

    JSON files without `run_info` are another tool's and are passed over silently.
    """
    loaded = LoadedResults([], [])
    owners: dict[ResultKey, Path] = {}
    for path in sorted(results_dir.rglob("*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            loaded.skipped.append((path, f"not valid JSON ({exc})"))  # results are written atomically: edited by hand
            continue
        if not (isinstance(data, dict) and "run_info" in data):
            continue
        try:
            validate_result(data)
            result = Result.from_json(data)
            _check_location(result.key, path, results_dir, owners)
        except InvalidResult as exc:
            loaded.skipped.append((path, str(exc)))
            continue
        owners[result.key] = path
        loaded.results.append(result)
    return loaded


def _check_location(key: ResultKey, path: Path, results_dir: Path, owners: dict[ResultKey, Path]) -> None:
    """A copy or a renamed file would count as one more seed: only the file at the key's own path counts."""
    expected = key.json_path(results_dir)
    if path != expected:
        shown = expected.name if expected.parent == path.parent else expected.relative_to(results_dir).as_posix()
        raise InvalidResult(f"file name does not match its key (expected {shown})")
    if key in owners:  # unreachable while names must match keys; kept so a looser name rule cannot double-count
        raise InvalidResult(f"same key as {owners[key]}")


def _version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=5)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=Path(__file__).parent,
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "") if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def environment_info(device: str) -> dict[str, Any]:
    import torch

    from harness.device import bf16_supported

    # `precision = "auto"` is bf16 autocast where this is true and fp32 elsewhere: the same config hash can
    # train in either, so every result says which it got
    hardware = {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(), "device": device,
                "bf16_matrix_units": bf16_supported(device)}
    if device.startswith("cuda") and torch.cuda.is_available():
        hardware["gpu"] = torch.cuda.get_device_name(0)
    return {"packages": {p: _version(p) for p in PACKAGES}, "python": platform.python_version(), "hardware": hardware}
