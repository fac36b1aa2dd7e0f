"""A grid of runs reports `[i/N]` with elapsed time and what is left, and ends with a summary table."""

from __future__ import annotations

import re

import pytest

from harness.cli import main


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_grid_prints_progress_and_a_summary_of_finished_and_skipped_runs(jobs, tmp_path, tiny_task_dir, capsys):
    out = tmp_path / "results"
    command = ["run", "--no-progress", "--task-dir", str(tiny_task_dir), "--methods", "bm25", "--out", str(out), "--jobs", jobs]
    assert main(command + ["--seeds", "0,1"]) == 0
    first = capsys.readouterr()
    assert re.search(r"\[2/2\] \d\d:\d\d elapsed: done tiny/bm25/seed\d", first.err)
    rows = [line.split() for line in first.out.splitlines() if line.startswith("tiny/bm25/")]
    assert [row[:2] for row in rows] == [["tiny/bm25/seed0", "done"], ["tiny/bm25/seed1", "done"]]
    assert all(row[3].endswith(".json") and row[3].startswith(str(out)) for row in rows)

    assert main(command + ["--seeds", "0,1,2"]) == 0
    again = capsys.readouterr()
    assert re.search(r"\[3/3\] .*: done tiny/bm25/seed2", again.err)
    statuses = [line.split()[:2] for line in again.out.splitlines() if line.startswith("tiny/bm25/")]
    assert statuses == [["tiny/bm25/seed0", "skipped"], ["tiny/bm25/seed1", "skipped"], ["tiny/bm25/seed2", "done"]]
