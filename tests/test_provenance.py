"""results/provenance.md: the command, time and machine of every result, read from the result files."""

from __future__ import annotations

from harness.provenance import provenance_markdown, reproducing_command
from harness.report import write_leaderboard
from harness.results import Result, ResultKey


def _run(baseline: str, seed: int, command: str, *, minutes: float, bf16: bool | None, renamed: str | None = None) -> Result:
    key = ResultKey(task="t", baseline=baseline, model="m", config_hash="c0ffee00", profile="small", seed=seed)
    run_info = {"method": "contrastive", "command": command, "created": f"2026-12-0{seed + 1}T10:00:00+0000",
                "wall_time_s": minutes * 60, "config": {"precision": "auto"}, **({"renamed_from": renamed} if renamed else {})}
    hardware = {"device": "cpu", "cpu_count": 2, "torch_threads": 1, **({} if bf16 is None else {"bf16_matrix_units": bf16})}
    return Result(key=key, main_score="ndcg_at_10", scores={"ndcg_at_10": 0.5}, evaluation_time=0.0, dataset_revision="x",
                  run_info=run_info, meta_info={"hardware": hardware}, per_query={f"q{i}": 0.5 for i in range(10)})


def test_the_command_keeps_what_changes_numbers_and_drops_where_they_went():
    command = "python -m harness run --task cyber --out /tmp/x --methods heal --no-progress --seeds 1 --threads 1"
    assert reproducing_command(command) == "python -m harness run --task cyber --methods heal --seeds 1 --threads 1"
    assert reproducing_command("python -m harness run --out=/tmp/x --task 'my corpus'") == "python -m harness run --task 'my corpus'"
    assert reproducing_command(command, seeds=[2, 0, 1]) == "python -m harness run --task cyber --methods heal --threads 1 --seeds 0,1,2"
    assert reproducing_command(command, seeds=[0]) == "python -m harness run --task cyber --methods heal --threads 1"
    assert reproducing_command("python -m harness run --task 'unbalanced") == "python -m harness run --task 'unbalanced"


def test_runs_of_one_command_are_one_row_with_their_seeds_times_machine_and_precision():
    base = "python -m harness run --task t --methods c --threads 1 --out /tmp/o{}"
    runs = [_run("c", 0, base.format(0), minutes=30.0, bf16=False), _run("c", 1, base.format(1) + " --seeds 1", minutes=10.0, bf16=True),
            _run("c", 2, base.format(2) + " --seeds 2", minutes=12.5, bf16=True),
            _run("c-100", 0, "python -m harness run --task t --methods c", minutes=4.0, bf16=None, renamed="c"),
            _run("d", 0, "", minutes=2.0, bf16=True)]
    rows = [line for line in provenance_markdown(runs).splitlines() if line.startswith("| `")]
    assert rows == [
        "| `python -m harness run --task t --methods c --threads 1 --seeds 0,1,2` | t: c 0–2 | 3 | 10.0–30.0 | cpu ×2 cores, 1 thread "
        "| bf16 2 + fp32 1 | 2026-12-01 – 2026-12-03 |",
        "| `python -m harness run --task t --methods c` | t: c-100 (ran as c) 0 | 1 | 4.0 | cpu ×2 cores, 1 thread | ? | 2026-12-01 |",
        "| `(not recorded)` | t: d 0 | 1 | 2.0 | cpu ×2 cores, 1 thread | bf16 | 2026-12-01 |",
    ], rows


def test_table_writes_provenance_beside_the_leaderboard(tmp_path):
    write_leaderboard(tmp_path, [_run("c", 0, "python -m harness run --task t --methods c", minutes=1.0, bf16=True)])
    text = (tmp_path / "provenance.md").read_text()
    assert text.startswith("# How each result was produced") and "| `python -m harness run --task t --methods c` | t: c 0 |" in text
