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
