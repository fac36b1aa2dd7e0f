"""Rows that are not what they seem are marked: an untrained fine-tuning run, a synthetic test split."""

from __future__ import annotations

from harness.leaderboard import build
from harness.report import markdown
from harness.results import Result, ResultKey


def _result(baseline: str, *, selected_step=None, synthetic_splits=(), score=0.5) -> Result:
    key = ResultKey(task="t", baseline=baseline, model="m", config_hash="c0ffee00", profile="small", seed=0)
    train_info = {"trained": selected_step is not None, "selected_step": selected_step}
    meta = {"task": {"synthetic": {"splits": list(synthetic_splits)}}} if synthetic_splits else {}
    per_query = {f"q{i}": score for i in range(10)}
    return Result(key=key, main_score="ndcg_at_10", scores={"ndcg_at_10": score}, evaluation_time=0.0, dataset_revision="x",
                  run_info={"method": baseline}, train_info=train_info, meta_info=meta, per_query=per_query)


def test_a_fine_tuning_run_that_kept_step_0_is_marked_untrained_in_every_table():
    board = markdown(build([_result("frozen"), _result("contrastive", selected_step=0), _result("lora", selected_step=150)]))
    assert "(n=1, untrained: step 0 selected)" in board
    assert "| contrastive (untrained: step 0 selected) | m |" in board
    assert "lora (untrained" not in board and "frozen (untrained" not in board


def test_a_synthetic_test_split_is_marked_in_the_task_column():
    board = markdown(build([_result("frozen", synthetic_splits=("train", "test"))]))
    assert "t (small) [synthetic test queries]" in board
    trained_on_synthetic_only = markdown(build([_result("frozen", synthetic_splits=("train",))]))
    assert "synthetic" not in trained_on_synthetic_only


def _run(baseline: str, seed: int, precision: str | None, bf16_units: bool | None, trained_bf16: bool | None = None) -> Result:
    key = ResultKey(task="t", baseline=baseline, model="m", config_hash="c0ffee00", profile="small", seed=seed)
    config = {} if precision is None else {"precision": precision}
    meta = {} if bf16_units is None else {"hardware": {"bf16_matrix_units": bf16_units}}
    return Result(key=key, main_score="ndcg_at_10", scores={"ndcg_at_10": 0.5}, evaluation_time=0.0, dataset_revision="x",
                  run_info={"method": baseline, "config": config}, meta_info=meta, per_query={f"q{i}": 0.5 for i in range(10)},
                  train_info={} if trained_bf16 is None else {"bf16": trained_bf16})


def test_a_row_whose_seeds_ran_in_different_precisions_says_so():
    """`precision = "auto"` follows the hardware, so the same config can train seed 0 in fp32 and seed 1 in bf16."""
    from harness.leaderboard import precision_summary, results_frame, run_precision

    runs = [_run("mixed", 0, "auto", False), _run("mixed", 1, "auto", True), _run("mixed", 2, "auto", True),
            _run("old", 0, "auto", None), _run("pinned", 0, "fp32", True), _run("bm25", 0, None, True),
            _run("old-trained", 0, "auto", None, trained_bf16=True)]  # the trainer's record stands in for the hardware's
    assert [run_precision(r) for r in runs] == ["fp32", "bf16", "bf16", "?", "fp32", "", "bf16"]
    frame = results_frame(runs)
    assert precision_summary(frame[frame.baseline == "mixed"].precision) == "bf16 2 + fp32 1"
    board = markdown(build(runs))
    table = {line.split("|")[1].strip(): line.split("|")[5].strip() for line in board.splitlines()
             if line.startswith("| ") and line.count("|") > 8 and line.split("|")[2].strip() == "m"}
    assert table == {"mixed": "bf16 2 + fp32 1", "old": "?", "pinned": "fp32", "bm25": "–", "old-trained": "bf16"}, table
    assert "`precision` (each task's first table)" in board
