"""`run --executor ray` on a real local Ray cluster: the same results as a local run, skips, and failures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

from conftest import tiny_corpus, write_beir  # noqa: E402
from harness.cli import main  # noqa: E402

FAILING_PLUGIN = """
from dataclasses import dataclass
from harness.methods import register_method
from harness.methods.bm25 import BM25, BM25Config

@dataclass(frozen=True)
class BrokenConfig(BM25Config):
    pass

@register_method("broken")
class Broken(BM25):
    name = "broken"
    Config = BrokenConfig

    def fit(self, task, config, context):
        raise RuntimeError("broken on purpose")
"""


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def grid(tmp_path_factory, tiny_bert_dir) -> tuple[Path, Path]:
    """The tiny task, and baselines: bm25, frozen and a 2-step contrastive on the tiny BERT."""
    root = tmp_path_factory.mktemp("ray-grid")
    task = write_beir(root / "tiny", *tiny_corpus())
    baselines = root / "baselines"
    baselines.mkdir()
    model = f'model = "{tiny_bert_dir}"\nprecision = "fp32"\n'
    (baselines / "bm25.toml").write_text('method = "bm25"\n')
    (baselines / "frozen.toml").write_text('method = "frozen"\n' + model)
    (baselines / "contrastive.toml").write_text('method = "contrastive"\nmax_steps = 2\neval_steps = 2\n' + model)
    return task, baselines


def _cli(grid, out: Path) -> list[str]:
    task, baselines = grid
    return ["run", "--no-progress", "--task-dir", str(task), "--baselines-dir", str(baselines), "--out", str(out)]


def _run(grid, out: Path, *args: str) -> int:
    return main([*_cli(grid, out), "--threads", "1", *args])  # one thread each way: identical float sums


def _results(out: Path) -> dict[str, dict]:
    return {p.relative_to(out).as_posix(): json.loads(p.read_text()) for p in sorted(out.rglob("*.json"))}


def test_ray_runs_score_exactly_as_local_runs(tmp_path, grid, local_ray):
    common = ("--methods", "bm25,frozen,contrastive", "--seeds", "0,1")
    assert _run(grid, tmp_path / "local", *common, "--jobs", "1") == 0
    assert _run(grid, tmp_path / "ray", *common, "--executor", "ray") == 0
    local, on_ray = _results(tmp_path / "local"), _results(tmp_path / "ray")
    assert sorted(local) == sorted(on_ray) and len(local) == 6
    for name in local:
        assert on_ray[name]["scores"] == local[name]["scores"], name
        assert on_ray[name]["per_query"] == local[name]["per_query"], name
    assert "| contrastive | st |" in (tmp_path / "ray" / "leaderboard.md").read_text()


def test_finished_results_are_skipped_before_anything_reaches_ray(tmp_path, grid, local_ray, monkeypatch, capsys):
    out = tmp_path / "results"
    assert _run(grid, out, "--methods", "bm25", "--executor", "ray") == 0
    stamp = next(out.rglob("*.json")).stat().st_mtime_ns
    monkeypatch.setattr("harness.ray_executor._submit_and_wait", lambda *a, **k: pytest.fail("submitted a finished run"))
    assert _run(grid, out, "--methods", "bm25", "--executor", "ray") == 0
    assert next(out.rglob("*.json")).stat().st_mtime_ns == stamp and "skip tiny/bm25/seed0" in capsys.readouterr().err


def test_a_failing_run_is_reported_while_the_others_finish(tmp_path, grid, local_ray, monkeypatch, capsys):
    (tmp_path / "ray_broken_plugin.py").write_text(FAILING_PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))  # the workers import the plugin from the driver's path
    out = tmp_path / "results"
    assert main(["--plugin", "ray_broken_plugin", *_cli(grid, out), "--methods", "bm25,broken", "--seeds", "0,1",
                 "--executor", "ray"]) == 2
    err = capsys.readouterr().err
    assert "harness: error: 2 of 4 runs failed (tiny/broken/seed0, tiny/broken/seed1)" in err
    assert "RuntimeError: broken on purpose" in err and "Traceback" in err
    assert sorted(p.name.split("__")[-1] for p in (out / "tiny" / "bm25").glob("*.json")) == ["seed0.json", "seed1.json"]


def test_ray_options_need_the_ray_executor_and_jobs_the_local_one(tmp_path, grid, capsys):
    assert _run(grid, tmp_path / "r", "--methods", "bm25", "--ray-address", "auto") == 2
    assert _run(grid, tmp_path / "r", "--methods", "bm25", "--executor", "ray", "--jobs", "2") == 2
    err = capsys.readouterr().err
    assert "--ray-address needs --executor ray" in err and "--jobs is for the local executor" in err
    assert not list((tmp_path / "r").rglob("*.json"))


def test_resources_come_from_the_baseline_and_stay_out_of_the_config_hash(tmp_path):
    from harness.baselines import load_baseline
    from harness.ray_executor import unit_resources

    (tmp_path / "bm25.toml").write_text('method = "bm25"\n')
    (tmp_path / "bm25-big.toml").write_text('method = "bm25"\nresources = { num_gpus = 1, num_cpus = 2 }\n')
    plain, big = load_baseline("bm25", tmp_path), load_baseline("bm25-big", tmp_path)
    assert unit_resources(plain) == {"num_cpus": 1, "num_gpus": 0}
    assert unit_resources(big) == {"num_cpus": 2, "num_gpus": 1} and big.config_hash == plain.config_hash


def test_an_unknown_resource_names_file_and_line(tmp_path, capsys):
    (tmp_path / "bm25.toml").write_text('method = "bm25"\nresources = { num_tpus = 1 }\n')
    assert main(["run", "--baselines-dir", str(tmp_path), "--methods", "bm25", "--out", str(tmp_path / "r")]) == 2
    assert f"{tmp_path / 'bm25.toml'}:2: unknown resource `num_tpus` (known: num_cpus, num_gpus)" in capsys.readouterr().err


def test_without_ray_the_executor_asks_for_the_extra(monkeypatch):
    import sys

    from harness.errors import HarnessError
    from harness.ray_executor import _import_ray

    monkeypatch.setitem(sys.modules, "ray", None)  # import ray now raises ImportError
    with pytest.raises(HarnessError, match=r"pip install -e \.\[ray\]"):
        _import_ray()
