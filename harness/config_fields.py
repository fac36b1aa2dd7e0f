"""How config fields enter the hash that keys stored results, so that configs can evolve without orphaning them.

A result's key holds a hash of its baseline's config (`Baseline.config_hash`), computed over
`hashed_fields(config)`. Two kinds of change would otherwise alter every hash of a method:

* a field added later: declared with `added_later(default)`, it is left out of the hash while it has
  its default, so old results keep their key and a config that sets the field gets a new one;
* a field renamed: declared with `stored_as(old_name, default)`, it enters the hash (and is accepted
  in baseline files, see `harness.baselines`) under the name results were stored with;
* a speed-only field: declared with `speed_only(default)`, it never enters the hash, because it cannot
  change a result (a test per field proves the same numbers with it on and off).

Result files also store `run_info.config`, the plain `dataclasses.asdict` of the config: old files
keep the old field names there. Only the key and the scores are read back (leaderboard, reruns), so
that is harmless; read `run_info.config` of an old file with `legacy_names` in mind.
"""

from __future__ import annotations

import dataclasses
from typing import Any

_HASHED_WHEN_DEFAULT = "hashed_when_default"
_STORED_AS = "stored_as"
_SPEED_ONLY = "speed_only"


def added_later(default: Any) -> Any:
    return dataclasses.field(default=default, metadata={_HASHED_WHEN_DEFAULT: False})


def speed_only(default: Any) -> Any:
    """A field that changes how fast a result is computed, never the result: never hashed."""
    return dataclasses.field(default=default, metadata={_SPEED_ONLY: True})


def stored_as(name: str, default: Any) -> Any:
    """A field renamed after results were stored: it is hashed (and may be written in baseline files) as `name`."""
    return dataclasses.field(default=default, metadata={_STORED_AS: name})


def legacy_names(config_cls: type) -> dict[str, str]:
    """stored (old) name -> current field name, for every renamed field of a config class."""
    return {f.metadata[_STORED_AS]: f.name for f in dataclasses.fields(config_cls) if _STORED_AS in f.metadata}


def hashed_fields(config: Any) -> dict[str, Any]:
    """`dataclasses.asdict(config)` under the stored names, without speed-only fields and `added_later` fields at their default."""
    values = dataclasses.asdict(config)
    hashed: dict[str, Any] = {}
    for field in dataclasses.fields(config):
        if field.metadata.get(_SPEED_ONLY):
            continue
        if field.metadata.get(_HASHED_WHEN_DEFAULT, True) is False and values[field.name] == field.default:
            continue
        name = field.metadata.get(_STORED_AS, field.name)
        if name in hashed:
            raise ValueError(f"{type(config).__name__}: two fields are hashed as {name!r}")
        hashed[name] = values[field.name]
    return hashed
