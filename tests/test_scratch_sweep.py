"""The scratch sweep removes only what the harness wrote, and only once its writer is dead."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from harness import atomic
from harness.atomic import sweep

WRITER = """import sys, time
from pathlib import Path
from harness import atomic
with atomic.directory(Path(sys.argv[1])):
    print("inside", flush=True)
    time.sleep(120)
"""


def _dead_pid() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(done.stdout)


def _writer_inside_a_scratch_folder(final: Path) -> subprocess.Popen:
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(final)], stdout=subprocess.PIPE, text=True)
    assert writer.stdout.readline().strip() == "inside"
    return writer


def _names(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))


def test_user_files_that_look_like_old_scratch_names_survive_a_sweep(tmp_path):
    dead = _dead_pid()
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / f".thesis.{dead}.bak.tmp").write_text("a user's backup")
    (tmp_path / f".x.json.{dead}.abc123.tmp").write_text("old-style scratch: no longer swept")
    assert sweep(tmp_path) == 0
    assert _names(tmp_path) == [f".x.json.{dead}.abc123.tmp", "notes", f"notes/.thesis.{dead}.bak.tmp"]


def test_scratch_of_a_killed_writer_is_swept_and_of_a_live_writer_kept(tmp_path):
    killed = _writer_inside_a_scratch_folder(tmp_path / "killed")
    live = _writer_inside_a_scratch_folder(tmp_path / "live")
    try:
        killed.send_signal(signal.SIGKILL)
        killed.wait()
        (tmp_path / f".harness-scratch.x.json.{_dead_pid()}.abc123.tmp").write_text("partial")
        (tmp_path / f".harness-scratch.y.json.{os.getpid()}.abc123.tmp").write_text("mine, in progress")
        atomic.write_text(tmp_path / "whole.json", "{}")
        assert sweep(tmp_path) == 2
        remaining = _names(tmp_path)
        assert len(remaining) == 3 and remaining[2] == "whole.json"
        assert remaining[0].startswith(f".harness-scratch.live.{live.pid}.")  # the live writer's folder
        assert remaining[1] == f".harness-scratch.y.json.{os.getpid()}.abc123.tmp"
    finally:
        live.kill()
        live.wait()


def test_discard_removes_a_folder_and_leaves_no_scratch(tmp_path):
    (tmp_path / "built" / "qrels").mkdir(parents=True)
    (tmp_path / "built" / "qrels" / "test.tsv").write_text("q\td\t1\n")
    atomic.discard(tmp_path / "built")
    atomic.discard(tmp_path / "built")  # already gone: nothing to do
    assert _names(tmp_path) == []
