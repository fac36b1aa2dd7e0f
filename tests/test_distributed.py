"""torchrun: two CPU processes (gloo) train one model with the trainer's DDP; rank 0 alone writes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest


def test_torchrun_two_cpu_processes_train_together_and_rank0_writes(tmp_path, tiny_task_dir, tiny_bert_dir):
    import torch.distributed as dist

    if not dist.is_gloo_available():
        pytest.skip("this torch build has no gloo backend")
    baselines = tmp_path / "baselines"
    baselines.mkdir()
    common = f'model = "{tiny_bert_dir}"\nmax_steps = 4\neval_steps = 2\nprecision = "fp32"\nmax_seq_length = 48\n'
    (baselines / "contrastive.toml").write_text('method = "contrastive"\nbatch_size = 6\n' + common)
    (baselines / "heal.toml").write_text('method = "heal"\nlabel_source = "gold"\nbatch_size = 12\nmembers_per_leaf = 2\n' + common)
    out = tmp_path / "results"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HARNESS_RUNS_DIR": str(tmp_path / "runs"),
           "HARNESS_EMBEDDING_CACHE": str(tmp_path / "cache")}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "harness", "run", "--no-progress", "--task-dir", str(tiny_task_dir), "--methods", "contrastive,heal",
               "--baselines-dir", str(baselines), "--out", str(out)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "rank 1: trained" in done.stderr  # the second process trained and left the writing to rank 0

    results = sorted(out.rglob("*.json"))
    assert [p.parent.name for p in results] == ["contrastive", "heal"]
    for path in results:
        result = json.loads(path.read_text())
        assert result["train_info"]["processes"] == 2
        assert result["train_info"]["steps"] == 4, (path.parent.name, result["train_info"])
        assert 0.0 <= result["scores"]["test"][0]["ndcg_at_10"] <= 1.0
    saved = sorted((tmp_path / "runs").rglob("model/config_sentence_transformers.json"))
    assert len(saved) == 2  # one saved model per method, written once
    assert not list(out.rglob(".*.tmp")) and not list((tmp_path / "runs").rglob(".*.tmp"))
