"""`harness tasks` and `harness methods` tell a newcomer what there is, with the numbers a run will use."""

from __future__ import annotations

import pytest

from harness.cli import main


@pytest.mark.integration
def test_tasks_lists_every_built_in_task_with_profile_counts_and_folder(capsys):
    assert main(["tasks", "--profile", "small"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:4] == ["task", "domain", "profile", "docs"]
    rows = {line.split()[0]: line for line in lines[1:]}
    assert set(rows) == {"cyber", "cyber-cwe", "healthcare", "healthcare-icd", "materials", "math"}
    cyber = rows["cyber"].split()
    assert cyber[2:7] == ["small", "637", "4000", "500", "1000"]  # the small profile's caps (tasks/cyber.toml)
    assert all("/data/" in row for row in rows.values())


def test_methods_lists_each_baseline_with_its_hash_main_settings_and_description(capsys):
    from harness.baselines import load_baseline

    assert main(["methods"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:4] == ["baseline", "method", "config", "main"]
    rows = {line.split()[0]: line for line in lines[1:]}
    assert {"bm25", "frozen", "contrastive", "lora", "heal", "lbr"} <= set(rows)
    contrastive = rows["contrastive"]
    assert load_baseline("contrastive").config_hash in contrastive
    assert "max_steps=" in contrastive and "learning_rate=" in contrastive and "model=minilm" in contrastive
    assert "Lexical baseline" in rows["bm25"]  # the first comment line of baselines/bm25.toml


def test_methods_shows_what_a_row_written_over_its_reference_changes(capsys):
    assert main(["methods"]) == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[1:]}
    assert "heal with label_source=gold " in rows["heal-gold"]
    assert "contrastive-30 with model=mpnet " in rows["contrastive-mpnet-30"]
    assert "contrastive with max_steps=30 eval_steps=15 " in rows["contrastive-30"]
    assert " with " not in rows["heal"].split("  ")[0] and "max_steps=200" in rows["heal"]
