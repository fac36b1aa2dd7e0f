"""Config hashes key stored results: they must survive new config fields and reproduce committed files."""

from __future__ import annotations

import json

import pytest
from dataclasses import dataclass, replace

from harness.baselines import load_baseline
from harness.errors import InputError
from harness.config_fields import added_later, hashed_fields, legacy_names, stored_as
from harness.paths import CHECKOUT_ROOT

RESULTS_DIR = CHECKOUT_ROOT / "results"


@dataclass(frozen=True)
class Before:
    learning_rate: float = 1e-4


@dataclass(frozen=True)
class After:
    learning_rate: float = 1e-4
    compile: bool = added_later(False)


@dataclass(frozen=True)
class Renamed:
    max_steps: int = stored_as("steps", 64)
    compile: bool = added_later(False)


def test_a_field_added_later_leaves_the_hash_alone_until_it_is_set():
    assert hashed_fields(After()) == hashed_fields(Before()) == {"learning_rate": 1e-4}
    assert hashed_fields(After(compile=True)) == {"learning_rate": 1e-4, "compile": True}


def test_the_compile_setting_changes_the_hash_only_when_set():
    frozen = load_baseline("frozen")
    assert "compile" in frozen.config_dict  # stored in run_info either way
    assert replace(frozen, config=replace(frozen.config, compile=True)).config_hash != frozen.config_hash


def test_a_speed_only_field_never_changes_the_hash():
    contrastive = load_baseline("contrastive")
    assert contrastive.config.dev_cache_untrained is True
    off = replace(contrastive, config=replace(contrastive.config, dev_cache_untrained=False))
    assert off.config_hash == contrastive.config_hash
    assert "dev_cache_untrained" not in hashed_fields(contrastive.config)


def test_every_committed_result_is_reproduced_by_its_baseline_config():
    """A result's key hash must be what its baseline file hashes to today, or `run` would redo it."""
    paths = sorted(RESULTS_DIR.glob("*/*/*.json"))
    assert paths, f"no committed results under {RESULTS_DIR}"
    for path in paths:
        key = json.loads(path.read_text())["run_info"]["key"]
        baseline = load_baseline(key["baseline"])
        assert baseline.config_hash == key["config_hash"], path


def test_a_renamed_field_is_hashed_under_its_old_name():
    assert hashed_fields(Renamed()) == {"steps": 64}
    assert hashed_fields(Renamed(max_steps=8, compile=True)) == {"steps": 8, "compile": True}
    assert legacy_names(Renamed) == {"steps": "max_steps"}


def test_a_baseline_file_may_still_use_a_renamed_key_but_not_both_names(tmp_path):
    (tmp_path / "old.toml").write_text('method = "contrastive"\nbatch_size = 12\n')
    (tmp_path / "both.toml").write_text('method = "contrastive"\nbatch_size = 12\ntrain_batch_size = 12\n')
    (tmp_path / "new.toml").write_text('method = "contrastive"\ntrain_batch_size = 12\n')

    old, new = load_baseline("old", tmp_path), load_baseline("new", tmp_path)
    assert old.config.train_batch_size == 12 and old.config_hash == new.config_hash
    with pytest.raises(InputError, match="old name of `train_batch_size`"):
        load_baseline("both", tmp_path)
