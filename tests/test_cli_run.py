"""The path task -> method -> scores -> result file -> leaderboard, through the CLI, on tiny models."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.cli import main
from harness.results import read_trec_run



def _run(*args, baselines: Path | None = None) -> int:
    extra = ["--baselines-dir", str(baselines)] if baselines else []
    return main(["run", "--no-progress", *extra, *args])


def test_run_writes_result_json_run_file_and_leaderboard(tmp_path, tiny_task_dir, tiny_baselines):
    out = tmp_path / "results"
    assert _run("--task-dir", str(tiny_task_dir), "--methods", "bm25,frozen", "--out", str(out), baselines=tiny_baselines) == 0
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.json"))
    assert [f.split("/")[:2] for f in files] == [["tiny", "bm25"], ["tiny", "frozen"]]
    result = json.loads((out / files[1]).read_text())
    block = result["scores"]["test"][0]
    assert block["main_score"] == block["ndcg_at_10"] and 0.0 <= block["ndcg_at_10"] <= 1.0
    assert {"ndcg_at_100", "mrr_at_10", "recall_at_100", "map_at_10", "precision_at_1", "hit_rate_at_5"} <= set(block)
    assert result["run_info"]["key"]["model"] == "st" and result["run_info"]["config"]["precision"] == "fp32"
    assert result["meta_info"]["packages"]["torch"] and result["run_info"]["n_queries"] == 12
    from harness.device import bf16_supported  # what precision = "auto" resolved to on this machine

    assert result["meta_info"]["hardware"]["bf16_matrix_units"] is bf16_supported("cpu")
    run = read_trec_run((out / files[1]).with_suffix(".trec.gz"))
    assert set(run) == {f"q{i:03d}" for i in range(54) if i % 9 in (6, 8)} and all(len(d) == 18 for d in run.values())
    board = (out / "leaderboard.md").read_text()
    assert "| frozen | st |" in board and "| bm25 | lexical |" in board and (out / "leaderboard.csv").exists()


def test_finished_results_are_skipped_unless_overwrite(tmp_path, tiny_task_dir, tiny_baselines, capsys):
    out = tmp_path / "results"
    assert _run("--task-dir", str(tiny_task_dir), "--methods", "bm25", "--out", str(out), baselines=tiny_baselines) == 0
    path = next(out.rglob("*.json"))
    before = path.stat().st_mtime_ns
    assert _run("--task-dir", str(tiny_task_dir), "--methods", "bm25", "--out", str(out), baselines=tiny_baselines) == 0
    assert path.stat().st_mtime_ns == before and "skip" in capsys.readouterr().err
    assert _run("--task-dir", str(tiny_task_dir), "--methods", "bm25", "--out", str(out), "--overwrite", baselines=tiny_baselines) == 0
    assert path.stat().st_mtime_ns != before


def test_seeds_give_one_result_each(tmp_path, tiny_task_dir, tiny_baselines):
    out = tmp_path / "results"
    assert _run("--task-dir", str(tiny_task_dir), "--methods", "bm25", "--seeds", "0,1", "--out", str(out), baselines=tiny_baselines) == 0
    assert sorted(p.name.split("__")[-1] for p in out.rglob("*.json")) == ["seed0.json", "seed1.json"]


def test_bad_task_folder_fails_with_one_line_and_writes_nothing(tmp_path, tiny_task_dir, capsys):
    (tiny_task_dir / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq006\tmissing\t1\n")
    out = tmp_path / "results"
    assert _run("--task-dir", str(tiny_task_dir), "--methods", "bm25", "--out", str(out)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"harness: error: {tiny_task_dir / 'qrels' / 'test.tsv'}:2: unknown document id 'missing' (not in corpus.jsonl)"]
    assert not out.exists()


def test_unknown_method_suggests_the_closest_name(tmp_path, tiny_task_dir, capsys):
    assert _run("--task-dir", str(tiny_task_dir), "--methods", "frozn", "--out", str(tmp_path / "r")) == 2
    assert "did you mean 'frozen'?" in capsys.readouterr().err


def test_a_misspelt_baseline_file_is_suggested_before_its_method(tmp_path, tiny_task_dir, capsys):
    assert _run("--task-dir", str(tiny_task_dir), "--methods", "heal-gpuu", "--out", str(tmp_path / "r")) == 2
    err = capsys.readouterr().err
    assert "unknown method or baseline 'heal-gpuu'; did you mean 'heal-gpu'?" in err and "harness methods" in err
    assert not (tmp_path / "r").exists()


def test_unknown_task_suggests_the_closest_name(tmp_path, capsys):
    assert _run("--task", "cyberr", "--methods", "bm25", "--out", str(tmp_path / "r")) == 2
    assert "unknown task 'cyberr'; did you mean 'cyber'?" in capsys.readouterr().err


def test_unknown_config_key_names_file_and_line(tmp_path, tiny_task_dir, capsys):
    folder = tmp_path / "baselines"
    folder.mkdir()
    (folder / "bm25.toml").write_text('method = "bm25"\nk1 = 1.2\nbee = 0.7\n')
    assert _run("--task-dir", str(tiny_task_dir), "--methods", "bm25", "--out", str(tmp_path / "r"), baselines=folder) == 2
    assert f"{folder / 'bm25.toml'}:3: unknown key `bee` for method 'bm25'" in capsys.readouterr().err


def test_missing_model_path_and_hub_ids_are_refused(tmp_path, tiny_task_dir, capsys):
    assert _run("--task-dir", str(tiny_task_dir), "--methods", "frozen", "--model", str(tmp_path / "nope"), "--out", str(tmp_path / "r")) == 2
    assert "does not exist" in capsys.readouterr().err
    assert _run("--task-dir", str(tiny_task_dir), "--methods", "frozen", "--model", "BAAI/bge-small-en", "--out", str(tmp_path / "r")) == 2
    assert "looks like a hub id" in capsys.readouterr().err and not (tmp_path / "r").exists()


def test_table_regenerates_the_leaderboard_from_result_files(tmp_path, tiny_task_dir, tiny_baselines):
    out = tmp_path / "results"
    assert _run("--task-dir", str(tiny_task_dir), "--methods", "bm25", "--out", str(out), baselines=tiny_baselines) == 0
    first = (out / "leaderboard.md").read_text()
    (out / "leaderboard.md").unlink()
    assert main(["table", "--out", str(out)]) == 0
    assert (out / "leaderboard.md").read_text() == first


def test_rescoring_reuses_cached_embeddings_with_identical_scores(tmp_path, tiny_task_dir, tiny_baselines, monkeypatch):
    monkeypatch.setenv("HARNESS_EMBEDDING_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "results"
    assert _run("--task-dir", str(tiny_task_dir), "--methods", "frozen", "--out", str(out), baselines=tiny_baselines) == 0
    cached = sorted((tmp_path / "cache").glob("*.npy"))
    assert len(cached) == 2  # documents and test queries
    first = json.loads(next(out.rglob("*.json")).read_text())["scores"]
    stamps = [p.stat().st_mtime_ns for p in cached]
    assert _run("--task-dir", str(tiny_task_dir), "--methods", "frozen", "--out", str(out), "--overwrite", baselines=tiny_baselines) == 0
    assert [p.stat().st_mtime_ns for p in cached] == stamps
    assert json.loads(next(out.rglob("*.json")).read_text())["scores"] == first


def test_every_result_carries_the_hierarchy_and_rag_families(tmp_path, tiny_task_dir, tiny_baselines):
    out = tmp_path / "results"
    assert _run("--task-dir", str(tiny_task_dir), "--methods", "bm25,frozen", "--out", str(out), baselines=tiny_baselines) == 0
    bm25, frozen = (json.loads(p.read_text())["scores"]["test"][0] for p in sorted(out.rglob("*.json")))
    for block in (bm25, frozen):
        assert {"context_precision_at_5", "gold_context_hit_rate_at_10", "wrong_branch_rate_l1_at_5"} <= set(block)
        assert block["gold_context_hit_rate_at_10"] == block["hit_rate_at_10"]
    assert any(name.startswith("hier_") for name in frozen) and not any(name.startswith("hier_") for name in bm25)


def test_a_folder_that_is_no_model_is_refused(tmp_path, tiny_task_dir, capsys):
    (tmp_path / "not-a-model").mkdir()
    (tmp_path / "not-a-model" / "notes.txt").write_text("weights elsewhere")
    assert _run("--task-dir", str(tiny_task_dir), "--methods", "frozen", "--model", str(tmp_path / "not-a-model"), "--out", str(tmp_path / "r")) == 2
    assert "neither modules.json nor config.json" in capsys.readouterr().err and not (tmp_path / "r").exists()


def test_opt_in_generator_adds_answer_support_and_caches_answers(tmp_path, tiny_task_dir, tiny_baselines):
    from llm_fixtures import save_tiny_llama

    llama = save_tiny_llama(tmp_path / "llama")
    out = tmp_path / "results"
    args = ("--task-dir", str(tiny_task_dir), "--methods", "bm25", "--out", str(out), "--generator", str(llama),
            "--generator-queries", "4", "--generator-k", "2")
    assert _run(*args, baselines=tiny_baselines) == 0
    result = next(out.rglob("*.json"))
    block = json.loads(result.read_text())["scores"]["test"][0]
    assert 0.0 <= block["answer_empty_rate_at_2"] <= 1.0
    if block["answer_empty_rate_at_2"] < 1.0:  # a random LM may emit no content words at all
        assert 0.0 <= block["answer_support_lexical_context_at_2"] <= 1.0
    answers = result.with_suffix(".answers.jsonl")
    assert len(answers.read_text().splitlines()) == 4
    stamp = answers.stat().st_mtime_ns
    assert _run(*args, "--overwrite", baselines=tiny_baselines) == 0
    assert answers.stat().st_mtime_ns == stamp  # every answer came from the cache
    assert "RAG hallucination proxies" in (out / "leaderboard.md").read_text()


def test_jobs_run_units_in_worker_processes_with_the_same_results(tmp_path, tiny_task_dir, tiny_baselines):
    serial, parallel = tmp_path / "serial", tmp_path / "parallel"
    common = ("--task-dir", str(tiny_task_dir), "--methods", "bm25,frozen", "--seeds", "0,1")
    assert _run(*common, "--out", str(serial), baselines=tiny_baselines) == 0
    assert _run(*common, "--jobs", "2", "--out", str(parallel), baselines=tiny_baselines) == 0
    files = sorted(p.relative_to(serial) for p in serial.rglob("*.json"))
    assert files == sorted(p.relative_to(parallel) for p in parallel.rglob("*.json")) and len(files) == 4
    for name in files:
        one, other = (json.loads((root / name).read_text()) for root in (serial, parallel))
        assert one["scores"] == other["scores"] and one["run_info"]["config"] == other["run_info"]["config"]
    assert "| frozen | st |" in (parallel / "leaderboard.md").read_text()


def test_jobs_must_be_positive(capsys):
    with pytest.raises(SystemExit):
        main(["run", "--jobs", "0"])
    assert "--jobs: must be a whole number >= 1" in capsys.readouterr().err
