"""Config hashes key stored results: they must survive new config fields and reproduce committed files."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace

from harness.baselines import load_baseline
from harness.config_fields import added_later, hashed_fields
from harness.paths import CHECKOUT_ROOT

RESULTS_DIR = CHECKOUT_ROOT / "results"


@dataclass(frozen=True)
class Before:
    learning_rate: float = 1e-4


@dataclass(frozen=True)
class After:
    learning_rate: float = 1e-4
    compile: bool = added_later(False)


def test_a_field_added_later_leaves_the_hash_alone_until_it_is_set():
    assert hashed_fields(After()) == hashed_fields(Before()) == {"learning_rate": 1e-4}
    assert hashed_fields(After(compile=True)) == {"learning_rate": 1e-4, "compile": True}


def test_the_compile_setting_changes_the_hash_only_when_set():
    frozen = load_baseline("frozen")
    assert "compile" in frozen.config_dict  # stored in run_info either way
    assert replace(frozen, config=replace(frozen.config, compile=True)).config_hash != frozen.config_hash


def test_every_committed_result_is_reproduced_by_its_baseline_config():
    """A result's key hash must be what its baseline file hashes to today, or `run` would redo it."""
    paths = sorted(RESULTS_DIR.glob("*/*/*.json"))
    assert paths, f"no committed results under {RESULTS_DIR}"
    for path in paths:
        key = json.loads(path.read_text())["run_info"]["key"]
        assert load_baseline(key["baseline"]).config_hash == key["config_hash"], path
