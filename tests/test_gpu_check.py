"""`scripts/gpu_check.sh --dry-run`: the GPU check's pipeline on the CPU, so that it cannot rot between GPU loans."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

import gpu_table  # noqa: E402


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory, tiny_bert_dir) -> Path:
    """The script itself, end to end, on the tiny task, BERT and Llama."""
    from conftest import tiny_corpus, write_beir
    from llm_fixtures import save_tiny_llama

    root = tmp_path_factory.mktemp("gpu-check")
    task, llama = write_beir(root / "tiny", *tiny_corpus()), save_tiny_llama(root / "llama")
    env = {**os.environ, "PYTHON": sys.executable, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(["bash", "scripts/gpu_check.sh", "--dry-run", "--task-dir", str(task), "--model",
                           str(tiny_bert_dir), "--llm", str(llama), "--out", str(root / "out")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return root / "out"


def test_dry_run_writes_one_table_row_per_method(dry_run):
    lines = (dry_run / "gpu_check.md").read_text().splitlines()
    assert lines[0].startswith("| baseline | device | steps | wall s | train s | tokens/s | model TFLOP/s | MFU % | peak GPU MiB |")
    rows = {line.split(" | ")[0].strip("| "): line.split(" | ") for line in lines[2:]}
    assert sorted(rows) == ["contrastive-gpu", "frozen", "heal-gpu", "lbr-gpu", "lora-gpu"]
    assert rows["lbr-gpu"][2] == "2 + 2" and rows["contrastive-gpu"][2] == "2" and rows["frozen"][5] == "–"
    assert all(row[1] == "cpu" and float(row[5].replace(",", "")) > 0 for name, row in rows.items() if name != "frozen")


def test_budget_configs_change_only_steps_and_say_so(dry_run):
    text = (dry_run / "baselines" / "contrastive-gpu.toml").read_text()
    assert "max_steps = 2  # gpu_check" in text and "eval_steps = 2  # gpu_check" in text
    assert text.startswith((ROOT / "baselines" / "contrastive-gpu.toml").read_text().splitlines()[0])
    result = json.loads(next((dry_run / "results").rglob("contrastive-gpu/*.json")).read_text())
    assert result["run_info"]["peak_gpu_memory_mb"] is None and result["train_info"]["steps"] == 2


def test_full_check_configs_keep_the_gpu_batches(tmp_path):
    gpu_table.write_configs(tmp_path, steps=150)
    text = (tmp_path / "lbr-gpu.toml").read_text()
    assert "stage1_steps = 150  # gpu_check" in text and "max_steps = 150  # gpu_check" in text
    assert "resources = { num_gpus = 1 }" in text and "precision = \"auto\"" in text


def test_check_configs_stand_alone_and_differ_from_the_committed_ones_only_in_budget(tmp_path):
    """The committed *-gpu files `extends` their CPU rows; the check's copies are flat, so they load from a folder
    holding nothing else, and resolve to the committed config except the budgets the check cuts."""
    from harness.baselines import load_baseline

    assert load_baseline("contrastive-gpu").extends == "contrastive"
    gpu_table.write_configs(tmp_path, steps=150)
    for name in gpu_table.CHECK_BASELINES:
        committed, check = load_baseline(name), load_baseline(name, tmp_path)
        changed = {key for key, value in check.config_dict.items() if committed.config_dict[key] != value}
        assert changed <= {"max_steps", "stage1_steps", "eval_steps"}, (name, changed)
        assert ("max_steps" in changed) == (name != "frozen") and check.resources == committed.resources
        assert "extends" not in (tmp_path / f"{name}.toml").read_text()


def _result(device: str) -> dict:
    return {"run_info": {"key": {"baseline": "contrastive-gpu"}, "method": "contrastive", "wall_time_s": 12.0,
                         "peak_gpu_memory_mb": 2048.0,
                         "config": {"model": "minilm", "train_batch_size": 128, "max_seq_length": 256}},
            "train_info": {"steps": 100, "seconds_per_step": 0.1},
            "meta_info": {"hardware": {"device": device}},
            "main_score": "ndcg_at_10", "scores": {"test": [{"main_score": 0.5, "recall_at_100": 0.9}]}}


def test_throughput_is_six_n_per_padded_token_against_the_peak():
    row = gpu_table.row(_result("cuda"), peak_tflops=989)
    tokens_per_second = 100 * 128 * 2 * 256 / 10.0
    assert row["tokens/s"] == f"{tokens_per_second:,.0f}" and row["peak GPU MiB"] == "2,048"
    flops = 6 * gpu_table.KNOWN_PARAMETERS["minilm"] * tokens_per_second
    assert row["model TFLOP/s"] == f"{flops / 1e12:.2f}" and row["MFU %"] == f"{100 * flops / 989e12:.1f}"


def test_a_run_that_did_not_use_cuda_fails_the_check(tmp_path, capsys):
    folder = tmp_path / "results" / "cyber" / "contrastive-gpu"
    folder.mkdir(parents=True)
    (folder / "minilm__abcd1234__full__seed0.json").write_text(json.dumps(_result("cpu")))
    assert gpu_table.main(["table", str(tmp_path / "results"), "--require-cuda"]) == 1
    assert "CUDA was not used: contrastive-gpu ran on 'cpu'" in capsys.readouterr().err
    assert gpu_table.main(["table", str(tmp_path / "results")]) == 0
