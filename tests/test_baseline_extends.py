"""`extends = "<baseline>"`: a row written as its reference plus the keys that differ."""

from __future__ import annotations

import dataclasses

import pytest

from harness.baselines import baseline_names, declared_comparisons, declared_sweeps, load_baseline
from harness.errors import InputError

PARENT = 'method = "contrastive"\ncompare_with = ["frozen"]\ndev_sweep = ["fast"]\nlearning_rate = 5e-5\nmax_steps = 200\n'


def write(folder, **files):
    folder.mkdir(exist_ok=True)
    for name, text in files.items():
        (folder / f"{name}.toml").write_text(text)
    return folder


def test_a_child_resolves_to_the_full_copy_with_the_same_hash(tmp_path):
    folder = write(tmp_path / "b", base=PARENT, fast='extends = "base"\nlearning_rate = 1e-4\n',
                   copy='method = "contrastive"\nlearning_rate = 1e-4\nmax_steps = 200\n')
    child, copy = load_baseline("fast", folder), load_baseline("copy", folder)
    assert child.method == "contrastive" and child.config.learning_rate == 1e-4 and child.config.max_steps == 200
    assert child.config == copy.config and child.config_hash == copy.config_hash
    assert child.config_hash != load_baseline("base", folder).config_hash


def test_compare_with_and_dev_sweep_belong_to_their_own_row(tmp_path):
    folder = write(tmp_path / "b", base=PARENT, fast='extends = "base"\nlearning_rate = 1e-4\n',
                   slow='extends = "base"\ncompare_with = ["base"]\nmax_steps = 400\n')
    assert load_baseline("base", folder).compare_with == ("frozen",)
    assert load_baseline("fast", folder).compare_with == ()
    assert load_baseline("slow", folder).compare_with == ("base",)


def test_chains_resolve_root_first(tmp_path):
    folder = write(tmp_path / "b", base=PARENT, fast='extends = "base"\nlearning_rate = 1e-4\n',
                   short='extends = "fast"\nmax_steps = 30\n')
    short = load_baseline("short", folder).config
    assert (short.learning_rate, short.max_steps) == (1e-4, 30)


def test_a_missing_parent_names_the_file_and_line(tmp_path):
    folder = write(tmp_path / "b", base=PARENT, child='# comment\nextends = "bsae"\nmax_steps = 30\n')
    with pytest.raises(InputError, match=r"child\.toml:2: `extends` must name a baseline file .*base.* got 'bsae'"):
        load_baseline("child", folder)


def test_a_circular_extends_is_refused(tmp_path):
    folder = write(tmp_path / "b", a='extends = "b"\nmax_steps = 1\n', b='extends = "a"\nmax_steps = 2\n')
    with pytest.raises(InputError, match=r"a\.toml:1: `extends = 'b'` is circular \(b -> a -> b\)"):
        load_baseline("b", folder)


def test_a_bad_key_is_reported_where_it_is_written(tmp_path):
    folder = write(tmp_path / "b", base=PARENT + "bee = 1\n", child='extends = "base"\nmax_steps = 30\n',
                   typo='extends = "contrastive-ok"\n\nmax_stpes = 30\n', **{"contrastive-ok": PARENT})
    with pytest.raises(InputError, match=r"base\.toml:6: unknown key `bee`"):
        load_baseline("child", folder)
    with pytest.raises(InputError, match=r"typo\.toml:3: unknown key `max_stpes`"):
        load_baseline("typo", folder)
    bad_type = write(tmp_path / "c", base=PARENT, child='extends = "base"\nmax_steps = "many"\n')
    with pytest.raises(InputError, match=r"child\.toml:2: `max_steps` must be int"):
        load_baseline("child", bad_type)


def test_every_committed_child_differs_from_its_parent_in_a_hashed_key():
    """A child identical to its parent would be one run under two names; an `extends` file must change something."""
    children = 0
    for name in baseline_names():
        child = load_baseline(name)
        if child.extends:
            children += 1
            reference = load_baseline(child.extends)
            changed = {f.name for f in dataclasses.fields(child.config)
                       if getattr(child.config, f.name) != getattr(reference.config, f.name)}
            assert changed and child.config_hash != reference.config_hash, name
    assert children >= 30  # the near-copies are written this way (issue #17's one-variable rows)


def test_the_leaderboard_reads_compare_with_of_a_child_file():
    assert declared_comparisons()["heal-gold"] == load_baseline("heal-gold").compare_with


def test_a_misspelt_compare_with_or_dev_sweep_name_is_an_error_at_its_line(tmp_path):
    """A typo there would silently drop a comparison (or a -tuned row) from the leaderboard."""
    folder = write(tmp_path / "x", base=PARENT, fast='extends = "base"\nlearning_rate = 1e-4\n',
                     child='extends = "base"\ncompare_with = ["bsae"]\n')
    with pytest.raises(InputError, match=r"child.toml:2: `compare_with` names unknown baseline 'bsae'; did you mean 'base'\?"):
        load_baseline("child", folder)
    with pytest.raises(InputError, match=r"child.toml:2: .*'bsae'"):
        declared_comparisons(folder)  # `table` reads the same lists and fails the same way
    (folder / "child.toml").write_text('extends = "base"\ndev_sweep = ["fsat"]\n')
    with pytest.raises(InputError, match=r"child.toml:2: `dev_sweep` names unknown baseline 'fsat'; did you mean 'fast'\?"):
        load_baseline("child", folder)


def test_compare_with_may_name_a_tuned_row_only_where_that_baseline_declares_a_sweep(tmp_path):
    folder = write(tmp_path / "x", base=PARENT, fast='extends = "base"\n', a='extends = "base"\ncompare_with = ["base-tuned"]\n',
                     b='extends = "base"\ncompare_with = ["fast-tuned"]\n')
    assert load_baseline("a", folder).compare_with == ("base-tuned",)
    with pytest.raises(InputError, match=r"b.toml:2: `compare_with` names unknown baseline 'fast-tuned'"):
        load_baseline("b", folder)


def test_every_committed_compare_with_and_dev_sweep_name_resolves():
    comparisons, sweeps = declared_comparisons(), declared_sweeps()  # each raises on an unknown name
    assert "contrastive-tuned" in comparisons["heal"] and sweeps["heal"] == ("heal-lr5e5",)
