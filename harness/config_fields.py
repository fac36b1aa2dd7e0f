"""Config fields added after results were stored under their config's hash.

A result's key holds a hash of its baseline's config (`Baseline.config_hash`). A field added to a
config later would change every hash of that method and orphan its stored results, so a field
declared with `added_later` is left out of the hash while it has its default: old results keep
their key, and a config that sets the field gets a new one.
"""

from __future__ import annotations

import dataclasses
from typing import Any

_KEY = "hashed_when_default"


def added_later(default: Any) -> Any:
    return dataclasses.field(default=default, metadata={_KEY: False})


def hashed_fields(config: Any) -> dict[str, Any]:
    """`dataclasses.asdict(config)` without the `added_later` fields that have their default."""
    values = dataclasses.asdict(config)
    for field in dataclasses.fields(config):
        if field.metadata.get(_KEY, True) is False and values[field.name] == field.default:
            del values[field.name]
    return values
