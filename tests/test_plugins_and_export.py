"""Plugins found through entry points and --plugin; results exported for mteb."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from harness.cli import main

EXAMPLE_PLUGIN = Path(__file__).resolve().parent.parent / "examples" / "plugin"


def test_installed_example_plugin_runs_through_the_cli(tmp_path, tiny_task_dir):
    site, source = tmp_path / "site", tmp_path / "plugin"
    shutil.copytree(EXAMPLE_PLUGIN, source)  # setuptools writes build/ beside the sources: keep it out of the repo
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--target", str(site),
                    str(source)], check=True, capture_output=True)
    baselines = tmp_path / "baselines"
    baselines.mkdir()
    (baselines / "tfidf.toml").write_text('method = "tfidf"\nngram_max = 2\n')
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    out = tmp_path / "results"
    done = subprocess.run([sys.executable, "-m", "harness", "run", "--no-progress", "--task-dir", str(tiny_task_dir),
                           "--methods", "tfidf", "--baselines-dir", str(baselines), "--out", str(out)],
                          env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    result = json.loads(next(out.rglob("*.json")).read_text())
    assert result["run_info"]["method"] == "tfidf" and result["run_info"]["config"] == {"sublinear_tf": True, "ngram_max": 2}
    assert result["scores"]["test"][0]["ndcg_at_10"] > 0.5  # the tiny task's queries share words with their documents


def test_plugin_module_registers_a_method_and_typos_get_a_hint(tmp_path, tiny_task_dir, monkeypatch, capsys):
    module = tmp_path / "my_plugin.py"
    module.write_text(
        "from harness.methods import register_method\n"
        "from harness.methods.bm25 import BM25\n"
        "@register_method('bm25-copy')\n"
        "class Copy(BM25):\n"
        "    name = 'bm25-copy'\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    out = tmp_path / "results"
    assert main(["--plugin", "my_plugin", "run", "--no-progress", "--task-dir", str(tiny_task_dir), "--methods", "bm25-copy", "--out", str(out)]) == 0
    assert (out / "tiny" / "bm25-copy").is_dir()
    assert main(["--plugin", "my_plugin", "run", "--task-dir", str(tiny_task_dir), "--methods", "bm25-cpy", "--out", str(out)]) == 2
    assert "did you mean 'bm25-copy'?" in capsys.readouterr().err


def test_a_plugin_cannot_shadow_a_builtin_method(tmp_path):
    from harness.methods import METHODS
    from harness.methods.frozen import Frozen

    METHODS.register("bm25", object)
    assert METHODS.get("bm25").__name__ == "BM25" and METHODS.get("frozen") is Frozen


def test_export_writes_mteb_cache_layout_that_result_cache_loads_as_written(tmp_path, tiny_task_dir):
    from mteb.cache import ResultCache

    out = tmp_path / "results"
    assert main(["run", "--no-progress", "--task-dir", str(tiny_task_dir), "--methods", "bm25", "--seeds", "0,1", "--out", str(out)]) == 0
    assert main(["export", "--mteb", str(tmp_path / "mteb"), "--out", str(out)]) == 0
    files = sorted((tmp_path / "mteb" / "results").glob("*/*/*.json"))
    assert [f.parent.parent.name for f in files if f.name != "model_meta.json"] == ["harness__bm25-lexical"] * 2
    ours = json.loads(next(out.rglob("*seed0.json")).read_text())["scores"]["test"][0]["ndcg_at_10"]
    loaded = ResultCache(tmp_path / "mteb").load_results(include_remote=False)
    runs = {(m.model_name, m.model_revision): m.task_results for m in loaded.model_results}
    assert len(runs) == 2
    seed0 = next(results for (name, revision), results in runs.items() if revision.endswith("seed0"))
    assert {name for name, _ in runs} == {"harness/bm25-lexical"}
    assert seed0[0].task_name == "HarnessTinyRetrieval" and seed0[0].get_score() == ours
