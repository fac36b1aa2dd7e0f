"""`table` counts only result files that pass the schema and lie at their key's path, and says what it skipped."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from harness.cli import main
from harness.results import scan_results

COMMITTED = Path(__file__).resolve().parent.parent / "results"
SEED0 = "cyber/frozen/minilm__18873cc1__small__seed0.json"


def _copy_committed(results_dir: Path, relative: str = SEED0, name: str | None = None) -> Path:
    target = results_dir / relative if name is None else (results_dir / relative).with_name(name)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(COMMITTED / relative, target)
    return target


def _write_edited(results_dir: Path, edit, seed: int = 0) -> Path:
    """The committed seed-0 result, moved to `seed` (file name and key agree) and changed by `edit`."""
    data = json.loads((COMMITTED / SEED0).read_text())
    data["run_info"]["key"]["seed"] = seed
    edit(data)
    path = results_dir / SEED0.replace("seed0", f"seed{seed}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))  # json writes NaN and Infinity as bare literals, as a careless tool would
    return path


def _block(data: dict) -> dict:
    return data["scores"]["test"][0]


def test_every_committed_result_passes_validation():
    loaded = scan_results(COMMITTED)
    assert loaded.skipped == []
    assert len(loaded.results) == len(list(COMMITTED.rglob("*__seed*.json"))) > 0


def test_a_valid_result_is_kept(tmp_path):
    _copy_committed(tmp_path)
    loaded = scan_results(tmp_path)
    assert [r.key.seed for r in loaded.results] == [0] and loaded.skipped == []


def test_a_copy_under_another_name_is_skipped_with_the_name_its_key_expects(tmp_path):
    _copy_committed(tmp_path)
    stray = _copy_committed(tmp_path, name="old copy.json")
    loaded = scan_results(tmp_path)
    assert len(loaded.results) == 1
    assert loaded.skipped == [(stray, "file name does not match its key (expected minilm__18873cc1__small__seed0.json)")]


def test_a_result_moved_to_another_folder_is_skipped_with_its_expected_path(tmp_path):
    moved = _copy_committed(tmp_path)
    moved = moved.rename(tmp_path / "cyber" / moved.name)
    assert scan_results(tmp_path).skipped == [
        (moved, "file name does not match its key (expected cyber/frozen/minilm__18873cc1__small__seed0.json)")]


@pytest.mark.parametrize("value, reason", [
    (float("nan"), "scores.test[0].ndcg_at_10 = nan is not finite"),
    (42, "scores.test[0].ndcg_at_10 = 42 is outside [0, 1]"),
    (1e308, "scores.test[0].ndcg_at_10 = 1e+308 is outside [0, 1]"),
    (float("inf"), "scores.test[0].ndcg_at_10 = inf is not finite"),
    (-0.1, "scores.test[0].ndcg_at_10 = -0.1 is outside [0, 1]"),
    ("0.5", "scores.test[0].ndcg_at_10 must be a number, got '0.5'"),
])
def test_a_score_that_is_not_a_finite_share_is_skipped(tmp_path, value, reason):
    def edit(data):
        _block(data)["ndcg_at_10"] = value
        _block(data)["main_score"] = value

    path = _write_edited(tmp_path, edit)
    loaded = scan_results(tmp_path)
    assert loaded.results == [] and loaded.skipped == [(path, reason)]


@pytest.mark.parametrize("metric", ["hier_l1_doc_accuracy", "hier_path_query_consistency", "wrong_branch_rate_l1_at_5_on_miss",
                                    "context_precision_at_5", "answer_support_lexical_gold_at_3"])
def test_every_share_metric_is_held_to_zero_one(tmp_path, metric):
    path = _write_edited(tmp_path, lambda data: _block(data).update({metric: 1.5}))
    assert scan_results(tmp_path).skipped == [(path, f"scores.test[0].{metric} = 1.5 is outside [0, 1]")]


def test_counts_and_seconds_only_need_to_be_finite(tmp_path):
    _write_edited(tmp_path, lambda data: _block(data).update({"n_answered": 500, "generation_time_s": 1e6}))
    assert len(scan_results(tmp_path).results) == 1


def test_a_non_finite_per_query_score_is_skipped(tmp_path):
    def edit(data):
        first = next(iter(data["per_query"]["ndcg_at_10"]))
        data["per_query"]["ndcg_at_10"][first] = float("nan")

    path = _write_edited(tmp_path, edit)
    [(skipped, reason)] = scan_results(tmp_path).skipped
    assert skipped == path and reason.startswith("per_query.ndcg_at_10.") and reason.endswith(" = nan is not finite")


def _delete(*keys):
    def edit(data):
        for key in keys[:-1]:
            data = data[key]
        del data[keys[-1]]
    return edit


def _set(value, *keys):
    def edit(data):
        for key in keys[:-1]:
            data = data[key]
        data[keys[-1]] = value
    return edit


@pytest.mark.parametrize("edit, reason", [
    (_delete("evaluation_time"), "missing field evaluation_time"),
    (_delete("scores"), "missing field scores"),
    (_delete("per_query"), "missing field per_query"),
    (_delete("run_info", "key"), "missing field run_info.key"),
    (_delete("run_info", "key", "config_hash"), "missing field run_info.key.config_hash"),
    (_delete("run_info", "main_score"), "missing field run_info.main_score"),
    (_set("0", "run_info", "key", "seed"), "run_info.key.seed must be an integer, got '0'"),
    (_set(True, "run_info", "key", "seed"), "run_info.key.seed must be an integer, got True"),
    (_set(None, "dataset_revision"), "dataset_revision must be a string, got None"),
    (_set("ndcg_at_7", "run_info", "main_score"), "run_info.main_score 'ndcg_at_7' is not a metric in scores.test[0]"),
    (_set({"test": []}, "scores"), "scores.test must be a non-empty list of score blocks"),
    (_delete("scores", "test", 0, "main_score"), "missing field scores.test[0].main_score"),
    (_set(0.25, "scores", "test", 0, "main_score"),
     "scores.test[0].main_score = 0.25 differs from scores.test[0].ndcg_at_10 = 0.5039260398516996"),
    (_set("healthcare", "task_name"), "task_name 'healthcare' differs from run_info.key.task 'cyber'"),
])
def test_a_missing_or_mistyped_field_is_skipped_without_a_crash(tmp_path, edit, reason):
    path = _write_edited(tmp_path, edit)
    loaded = scan_results(tmp_path)
    assert loaded.results == [] and loaded.skipped == [(path, reason)]


def test_json_that_is_not_a_result_is_ignored_silently(tmp_path):
    (tmp_path / "notes.json").write_text('{"owner": "someone else"}')
    loaded = scan_results(tmp_path)
    assert loaded.results == [] and loaded.skipped == []


def test_table_reports_skipped_files_and_counts_only_valid_seeds(tmp_path, capsys, monkeypatch):
    from harness import atomic

    swept = []
    monkeypatch.setattr(atomic, "sweep", lambda folder: swept.append(folder) or 0)
    for seed in (0, 1, 2):
        _copy_committed(tmp_path, SEED0.replace("seed0", f"seed{seed}"))
    stray = _copy_committed(tmp_path, name="old copy.json")
    broken = _write_edited(tmp_path, _set(float("nan"), "scores", "test", 0, "ndcg_at_10"), seed=3)

    assert main(["table", "--out", str(tmp_path)]) == 0
    err = capsys.readouterr().err.splitlines()
    assert err == [
        f"harness: skipped {broken}: scores.test[0].ndcg_at_10 = nan is not finite",
        f"harness: skipped {stray}: file name does not match its key (expected minilm__18873cc1__small__seed0.json)",
    ]
    board = (tmp_path / "leaderboard.md").read_text()
    assert "(n=3)" in board and "(n=4)" not in board and "(n=5)" not in board
    assert swept == [tmp_path]


def test_a_result_file_that_is_not_valid_json_is_skipped_with_the_parse_error(tmp_path):
    path = tmp_path / "cyber" / "frozen" / "half-edited.json"
    path.parent.mkdir(parents=True)
    path.write_text('{"task_name": "cyber",')
    [(skipped, reason)] = scan_results(tmp_path).skipped
    assert skipped == path and reason.startswith("not valid JSON (Expecting property name")
