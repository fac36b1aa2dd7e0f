"""Atomic writes: a reader sees the old file or the whole new one, never a part.

Scratch files and folders are named `.harness-scratch.<final name>.<writer pid>.<random>.tmp` beside
their target, so a process killed mid-write leaves only such names behind, and `sweep` removes those
whose writer is no longer running. The `.harness-scratch.` prefix keeps a user's own `.x.123.y.tmp`
files safe; scratch left by versions before the prefix (`.<final name>.<pid>.<random>.tmp`) is no
longer swept. `locked` serialises read-modify-write steps (the leaderboard) across processes
sharing a folder.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import secrets
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

_SCRATCH_MARK = ".harness-scratch."
_SCRATCH = re.compile(r"^\.harness-scratch\..+\.(\d+)\.[^.]+\.tmp$")


def _prefix(final: Path) -> str:
    return f"{_SCRATCH_MARK}{final.name}.{os.getpid()}."


def write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=_prefix(path), suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; results are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_text(path: Path, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


@contextlib.contextmanager
def directory(final: Path) -> Iterator[Path]:
    """Yield a scratch folder beside `final`; it becomes `final` only if the block succeeds."""
    final.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(dir=final.parent, prefix=_prefix(final), suffix=".tmp"))
    try:
        yield scratch
        if final.exists():  # another process finished the same build first: keep theirs
            shutil.rmtree(scratch)
        else:
            os.replace(scratch, final)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise


def discard(path: Path) -> None:
    """Remove a file or folder at once for readers: it is first renamed to a scratch name (which
    `sweep` cleans up should this process die), then deleted. Nothing happens if it is gone already."""
    scratch = path.with_name(f"{_prefix(path)}{secrets.token_hex(4)}.tmp")
    try:
        os.rename(path, scratch)
    except FileNotFoundError:  # another process discarded it first
        return
    _remove(scratch)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _abandoned(path: Path) -> bool:
    """A scratch name of the harness whose writer is another process that is no longer running."""
    match = _SCRATCH.match(path.name)
    return bool(match) and int(match.group(1)) != os.getpid() and not _running(int(match.group(1)))


def _remove(path: Path) -> bool:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
        return True
    try:
        path.unlink()
    except FileNotFoundError:  # inside a scratch folder removed a moment ago, or swept by another process
        return False
    return True


def sweep(folder: Path) -> int:
    """Remove the harness's scratch files and folders left below `folder` by writers that were killed;
    returns how many. Only `.harness-scratch.*` names are touched, never other `.tmp` files."""
    if not folder.is_dir():
        return 0
    abandoned = [path for path in folder.rglob(f"{_SCRATCH_MARK}*.tmp") if _abandoned(path)]
    return sum(_remove(path) for path in abandoned)


@contextlib.contextmanager
def locked(folder: Path) -> Iterator[None]:
    """An exclusive advisory lock on `folder` (a `.lock` file inside it), released on exit or death."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
