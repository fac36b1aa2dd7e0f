"""Interruption, concurrency and determinism: results are whole, complete on rerun, and reproducible."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from harness.atomic import sweep, write_text


def _baselines(folder: Path, tiny_bert_dir: Path, extra: dict[str, str] | None = None) -> Path:
    folder.mkdir(exist_ok=True)
    (folder / "frozen.toml").write_text(f'method = "frozen"\nmodel = "{tiny_bert_dir}"\nprecision = "fp32"\nbatch_size = 4\n')
    (folder / "bm25.toml").write_text('method = "bm25"\n')
    for name, text in (extra or {}).items():
        (folder / f"{name}.toml").write_text(text)
    return folder


def _contrastive(tiny_bert_dir: Path) -> dict[str, str]:
    """A few steps of real fine-tuning on the tiny BERT: the trained path of the runner."""
    return {"contrastive": f'method = "contrastive"\nmodel = "{tiny_bert_dir}"\nmax_steps = 4\nbatch_size = 12\n'
                           'eval_steps = 2\nprecision = "fp32"\nmax_seq_length = 48\n'}


def _command(task_dir: Path, baselines: Path, out: Path, methods: str, seeds: str = "0") -> list[str]:
    return [sys.executable, "-m", "harness", "run", "--no-progress", "--task-dir", str(task_dir), "--methods", methods,
            "--seeds", seeds, "--baselines-dir", str(baselines), "--out", str(out)]


def _env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "HARNESS_EMBEDDING_CACHE": str(tmp_path / "cache"),
            "HARNESS_RUNS_DIR": str(tmp_path / "runs")}


def _scores(out: Path) -> dict[str, dict]:
    return {p.relative_to(out).as_posix(): json.loads(p.read_text())["scores"] for p in sorted(out.rglob("*.json"))}


def _runs(out: Path) -> dict[str, bytes]:
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*.trec.gz"))}


def test_same_seed_gives_bit_identical_scores_and_rankings(tmp_path, tiny_task_dir, tiny_bert_dir):
    baselines = _baselines(tmp_path / "baselines", tiny_bert_dir)
    for name in ("a", "b"):
        env = {**_env(tmp_path / name)}
        subprocess.run(_command(tiny_task_dir, baselines, tmp_path / name, "bm25,frozen"), env=env, check=True, capture_output=True)
    assert _scores(tmp_path / "a") == _scores(tmp_path / "b") and len(_scores(tmp_path / "a")) == 2
    assert _runs(tmp_path / "a") == _runs(tmp_path / "b")


def test_training_is_bit_identical_for_a_seed_and_differs_across_seeds(tmp_path, tiny_task_dir, tiny_bert_dir):
    baselines = _baselines(tmp_path / "baselines", tiny_bert_dir, _contrastive(tiny_bert_dir))
    for name in ("a", "b"):
        subprocess.run(_command(tiny_task_dir, baselines, tmp_path / name, "contrastive", "0,1"), env=_env(tmp_path / f"{name}-env"),
                       check=True, capture_output=True)
    first, second = _scores(tmp_path / "a"), _scores(tmp_path / "b")
    assert first == second and _runs(tmp_path / "a") == _runs(tmp_path / "b")
    seed0, seed1 = (first[k] for k in sorted(first))
    assert seed0 != seed1


def test_sweep_removes_scratch_files_of_dead_writers_only(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True).stdout.strip()
    (tmp_path / f".harness-scratch.x.json.{dead}.abc123.tmp").write_text("partial")
    (tmp_path / f".harness-scratch.y.json.{os.getpid()}.abc123.tmp").write_text("mine, in progress")
    (tmp_path / f".harness-scratch.folder.{dead}.zz.tmp").mkdir()
    (tmp_path / f".x.json.{dead}.abc123.tmp").write_text("a user's file that only looks like scratch")
    write_text(tmp_path / "whole.json", "{}")
    assert sweep(tmp_path) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        f".harness-scratch.y.json.{os.getpid()}.abc123.tmp", f".x.json.{dead}.abc123.tmp", "whole.json"]


def test_sigkill_at_random_points_then_rerun_equals_an_uninterrupted_run(tmp_path, tiny_task_dir, tiny_bert_dir):
    baselines = _baselines(tmp_path / "baselines", tiny_bert_dir, _contrastive(tiny_bert_dir))
    reference, interrupted = tmp_path / "reference", tmp_path / "interrupted"
    methods, seeds = "bm25,frozen,contrastive", "0,1,2"
    subprocess.run(_command(tiny_task_dir, baselines, reference, methods, seeds), env=_env(tmp_path / "ref"), check=True, capture_output=True)
    rng = random.Random(7)
    env = _env(tmp_path / "int")
    for _ in range(4):
        process = subprocess.Popen(_command(tiny_task_dir, baselines, interrupted, methods, seeds), env=env,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(2.0, 9.0))
        process.send_signal(signal.SIGKILL)
        process.wait()
        for path in interrupted.rglob("*.json") if interrupted.exists() else []:
            json.loads(path.read_text())  # never a partial result or table
    subprocess.run(_command(tiny_task_dir, baselines, interrupted, methods, seeds), env=env, check=True, capture_output=True)
    assert _scores(interrupted) == _scores(reference) and len(_scores(reference)) == 9
    assert _runs(interrupted) == _runs(reference)
    assert not [p for p in interrupted.rglob("*.tmp")]
    main_table = lambda out: (out / "leaderboard.md").read_text().split("### Retrieval")[0]  # what follows holds timings
    assert main_table(interrupted) == main_table(reference)


def test_two_runs_into_one_results_folder_keep_both_and_a_complete_leaderboard(tmp_path, tiny_task_dir, tiny_bert_dir):
    baselines = _baselines(tmp_path / "baselines", tiny_bert_dir)
    out = tmp_path / "results"
    env = _env(tmp_path)
    processes = [subprocess.Popen(_command(tiny_task_dir, baselines, out, methods, "0,1"), env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for methods in ("bm25", "frozen")]
    assert [p.wait() for p in processes] == [0, 0]
    assert sorted(_scores(out)) == sorted(f"tiny/{m}/{stem}__seed{s}.json" for m, stem in
                                          (("bm25", next((out / "tiny" / "bm25").glob("*seed0.json")).name.rsplit("__", 1)[0]),
                                           ("frozen", next((out / "tiny" / "frozen").glob("*seed0.json")).name.rsplit("__", 1)[0]))
                                          for s in (0, 1))
    board = (out / "leaderboard.md").read_text()
    assert "| bm25 | lexical |" in board and "| frozen | st |" in board
