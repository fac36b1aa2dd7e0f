"""Name -> implementation registries with lazy `module:attr` targets, entry points and typo hints.

Modelled on lm-evaluation-harness: built-ins are strings imported only when used, installed
packages add names through the entry-point group, `--plugin module` imports a module that calls
`register`. A built-in name always wins over a plugin of the same name.
"""

from __future__ import annotations

import difflib
import importlib
from importlib import metadata
from typing import Any

from harness.errors import HarnessError


def did_you_mean(name: str, known) -> str:
    """`; did you mean 'x'?` for the closest of `known`, or "" when none is close."""
    close = difflib.get_close_matches(name, list(known), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def import_target(target: str) -> Any:
    module_name, _, attr = target.partition(":")
    module = importlib.import_module(module_name)
    return getattr(module, attr) if attr else module


class Registry:
    def __init__(self, kind: str, group: str, builtins: dict[str, Any]):
        self.kind, self.group = kind, group
        self._builtins = dict(builtins)
        self._plugins: dict[str, Any] = {}

    def register(self, name: str, target: Any) -> None:
        if name not in self._builtins:
            self._plugins[name] = target

    def _entry_points(self) -> dict[str, Any]:
        return {ep.name: ep for ep in metadata.entry_points(group=self.group)}

    def names(self) -> list[str]:
        return sorted({*self._builtins, *self._plugins, *self._entry_points()})

    def __contains__(self, name: str) -> bool:
        return name in self.names()

    def get(self, name: str) -> Any:
        target = self._builtins.get(name) or self._plugins.get(name)
        if target is None:
            entry_point = self._entry_points().get(name)
            if entry_point is None:
                raise HarnessError(self.unknown_message(name))
            target = self._plugins[name] = entry_point.load()
        return import_target(target) if isinstance(target, str) else target

    def unknown_message(self, name: str) -> str:
        return f"unknown {self.kind} {name!r}{did_you_mean(name, self.names())} (known: {', '.join(self.names())})"


def load_plugin(module_name: str) -> None:
    """Import a module named with `--plugin`; it registers what it adds."""
    try:
        importlib.import_module(module_name)
    except ImportError as exc:
        raise HarnessError(f"cannot import plugin module {module_name!r}: {exc}") from None
