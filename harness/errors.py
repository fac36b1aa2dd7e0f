"""Errors a user can fix: the CLI prints them as one line and exits non-zero."""

from __future__ import annotations

from pathlib import Path


class HarnessError(Exception):
    """A problem with the user's input or environment, stated in one line."""


class InputError(HarnessError):
    """A problem at a place in an input file: rendered as `file:line: problem`."""

    def __init__(self, path: str | Path, line: int | None, problem: str):
        self.path, self.line, self.problem = str(path), line, problem
        where = f"{path}:{line}" if line else str(path)
        super().__init__(f"{where}: {problem}")
