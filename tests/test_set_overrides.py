"""`run --set key=value`: a config key of the selected baselines, overridden from the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.baselines import apply_settings, load_baseline, parse_setting
from harness.cli import main



def run(task_dir: Path, baselines: Path, out: Path, *settings: str) -> int:
    sets = [arg for setting in settings for arg in ("--set", setting)]
    return main(["run", "--no-progress", "--task-dir", str(task_dir), "--methods", "bm25,frozen",
                 "--baselines-dir", str(baselines), "--out", str(out), *sets])


def results(out: Path) -> dict[str, dict]:
    return {path.parent.name + "/" + path.name: json.loads(path.read_text()) for path in out.rglob("*.json")}


@pytest.mark.parametrize("text, value", [
    ("learning_rate=1e-4", 1e-4), ("compile=true", True), ('query_prefix="query: "', "query: "),
    ("lora_target_modules=[\"query\", \"value\"]", ["query", "value"]), ("model=minilm", "minilm"),
    ("query_prefix=query:", "query:"),
])
def test_a_value_is_read_as_toml_and_a_bare_word_as_a_string(text, value):
    assert parse_setting(text) == (text.split("=")[0], value)


def test_an_override_is_part_of_the_config_and_of_its_hash():
    default = load_baseline("contrastive")
    (changed,) = apply_settings([default], {"max_steps": 60, "learning_rate": 1, "batch_size": 16})
    assert (changed.config.max_steps, changed.config.learning_rate, changed.config.train_batch_size) == (60, 1.0, 16)
    assert changed.config_hash != default.config_hash and changed.name == default.name
    (same,) = apply_settings([default], {"max_steps": default.config.max_steps})
    assert same.config_hash == default.config_hash


def test_a_key_applies_only_to_the_baselines_that_have_it(tmp_path, tiny_task_dir, tiny_baselines):
    out = tmp_path / "results"
    assert run(tiny_task_dir, tiny_baselines, out) == 0
    assert run(tiny_task_dir, tiny_baselines, out, "max_seq_length=16") == 0  # bm25 has no such key: skipped as done
    files = results(out)
    bm25 = [r for name, r in files.items() if name.startswith("bm25/")]
    frozen = sorted((r["run_info"]["config"]["max_seq_length"], r["run_info"]["key"]["config_hash"])
                    for name, r in files.items() if name.startswith("frozen/"))
    default = load_baseline("frozen", tiny_baselines).config.max_seq_length
    assert len(bm25) == 1 and [length for length, _ in frozen] == sorted([16, default])
    assert frozen[0][1] != frozen[1][1]


@pytest.mark.parametrize("setting, message", [
    ("max_seq_lenght=64", "--set max_seq_lenght: unknown config key 'max_seq_lenght'; did you mean 'max_seq_length'?"),
    ("max_seq_length=long", "--set max_seq_length: `max_seq_length` must be int, got 'long' (baseline 'frozen')"),
    ("k1=true", "--set k1: `k1` must be float, got True (baseline 'bm25')"),
    ("max_seq_length", "--set takes key=value, got 'max_seq_length'"),
])
def test_an_unknown_key_or_a_wrong_type_is_one_line_exit_2_and_runs_nothing(setting, message, tmp_path, tiny_task_dir,
                                                                            tiny_baselines, capsys):
    out = tmp_path / "results"
    assert run(tiny_task_dir, tiny_baselines, out, setting) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith(f"harness: error: {message}") and "\n" not in error
    assert not list(out.rglob("*.json"))
