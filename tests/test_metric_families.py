"""Metric families come from one registry: the runner scores each, the leaderboard gives each a section,
and the committed tables are exactly what `table` makes from the committed results."""

from __future__ import annotations

import shutil

import pytest

from harness.cli import main
from harness.metrics import FAMILIES, MetricFamily, register_family
from harness.paths import CHECKOUT_ROOT


def test_built_in_families_register_in_leaderboard_order():
    assert list(FAMILIES)[:3] == ["retrieval", "hierarchy", "rag"]
    assert FAMILIES["retrieval"].headline[0] == "ndcg_at_10"


@pytest.fixture
def extra_family():
    family = register_family(MetricFamily(
        name="corpus_size", title="Corpus size (a plugin family)",
        compute=lambda evaluation: {"corpus_documents": float(len(evaluation.task.corpus))},
        headline=("corpus_documents",)))
    yield family
    del FAMILIES[family.name]


def test_a_new_family_is_scored_into_every_result_and_gets_its_own_section(tmp_path, tiny_task_dir, extra_family):
    out = tmp_path / "results"
    assert main(["run", "--no-progress", "--task-dir", str(tiny_task_dir), "--methods", "bm25", "--out", str(out)]) == 0
    board = (out / "leaderboard.md").read_text()
    assert "### Corpus size (a plugin family)" in board
    section = board.split("### Corpus size (a plugin family)")[1]
    assert "| bm25 | lexical |" in section and "18" in section.split("\n\n")[1]


def test_committed_tables_are_what_table_makes_from_the_committed_results(tmp_path, capsys):
    results = tmp_path / "results"
    shutil.copytree(CHECKOUT_ROOT / "results", results)
    assert main(["table", "--out", str(results)]) == 0
    assert "skipped" not in capsys.readouterr().err
    for name in ("leaderboard.md", "leaderboard.csv", "provenance.md"):
        assert (results / name).read_bytes() == (CHECKOUT_ROOT / "results" / name).read_bytes(), name
