"""Per-query wrong-branch outcomes: what they hold, how stored results get them, and the paired test on shared misses."""

from __future__ import annotations

import json
import math

import pytest

from harness.cli import main
from harness.metrics.rag import branch_outcomes, rag_scores
from harness.results import Result
from conftest import tiny_corpus, write_beir
from test_leaderboard_comparisons import _result
from test_metrics_rag import RUN, toy_task


def test_branch_outcomes_hold_the_missed_queries_and_average_to_the_on_miss_metric():
    task = toy_task()
    outcomes = branch_outcomes(task, "test", RUN, k=1, levels=(1, 2, 3))
    scores = rag_scores(task, "test", RUN, k_values=(1,))
    # at k = 1: q1 (a2 against a1), q2 (b1x against b1, a2), q3 (a2 against a1) miss; q4 has no contexts; q5 hits
    assert set(outcomes) == {f"wrong_branch_rate_l{level}_at_1_on_miss" for level in (1, 2, 3)}
    assert outcomes["wrong_branch_rate_l2_at_1_on_miss"] == {"q1": 1.0, "q2": 0.0, "q3": 1.0}
    for name, values in outcomes.items():
        assert math.fsum(values.values()) / len(values) == pytest.approx(scores[name], abs=1e-15)
    at_3 = branch_outcomes(task, "test", RUN, k=3)  # only q4 misses at 3, and it has no contexts: nothing to score
    assert at_3 == {}
    assert set(branch_outcomes(task, "test", RUN, k=1)) == {f"wrong_branch_rate_l{level}_at_1_on_miss" for level in (1, 2)}


@pytest.fixture
def tiny_task_dir(tmp_path):
    """The tiny task with half its test queries judged against a document of another topic, so BM25 misses them."""
    corpus, queries, qrels = tiny_corpus()
    doc_ids = [doc["_id"] for doc in corpus]
    for n, (qid, judged) in enumerate(sorted(qrels["test"].items())):
        if n % 2:
            (doc_id,) = judged
            qrels["test"][qid] = {doc_ids[(doc_ids.index(doc_id) + 9) % len(doc_ids)]: 1}  # 9 documents on: next topic
    return write_beir(tmp_path / "tiny", corpus, queries, qrels)


def _stored_result(tmp_path, tiny_task_dir, tiny_baselines):
    out = tmp_path / "results"
    assert main(["run", "--no-progress", "--baselines-dir", str(tiny_baselines), "--task-dir", str(tiny_task_dir),
                 "--methods", "bm25", "--out", str(out)]) == 0
    return out, next(out.rglob("*.json"))


def _strip_outcomes(path):
    """The result as a run written before per-query branch outcomes existed."""
    data = json.loads(path.read_text())
    main_score = data["run_info"]["main_score"]
    removed = {k for k in data["per_query"] if k.startswith("wrong_branch_rate_")}
    data["per_query"] = {k: v for k, v in data["per_query"].items() if k not in removed}
    assert main_score in data["per_query"]
    path.write_text(json.dumps(data, indent=2) + "\n")
    return data, removed


def test_a_run_stores_the_outcomes_and_branch_outcomes_adds_them_to_an_older_result_once(tmp_path, tiny_task_dir, tiny_baselines):
    out, path = _stored_result(tmp_path, tiny_task_dir, tiny_baselines)
    written = json.loads(path.read_text())
    stored = {k: v for k, v in written["per_query"].items() if k.startswith("wrong_branch_rate_")}
    assert set(stored) == {"wrong_branch_rate_l1_at_5_on_miss", "wrong_branch_rate_l2_at_5_on_miss"}  # the headline columns
    for name, values in stored.items():  # each is the scored metric's own per-query values
        assert math.fsum(values.values()) / len(values) == pytest.approx(written["scores"]["test"][0][name], abs=1e-12)
    older, removed = _strip_outcomes(path)
    assert removed == set(stored)
    args = ["branch-outcomes", "--task-dir", str(tiny_task_dir), "--out", str(out)]
    assert main(args) == 0
    after = json.loads(path.read_text())
    assert after["per_query"] == written["per_query"]  # the same values the run wrote
    assert {k: v for k, v in after.items() if k != "per_query"} == {k: v for k, v in older.items() if k != "per_query"}
    stamp = path.stat().st_mtime_ns
    assert main(args) == 0  # already there: not rewritten
    assert path.stat().st_mtime_ns == stamp


def test_branch_outcomes_refuse_a_run_file_that_does_not_reproduce_the_stored_score(tmp_path, tiny_task_dir, tiny_baselines, capsys):
    out, path = _stored_result(tmp_path, tiny_task_dir, tiny_baselines)
    data, removed = _strip_outcomes(path)
    name = sorted(removed)[0]
    data["scores"]["test"][0][name] += 0.01  # a score the stored ranking does not give
    path.write_text(json.dumps(data, indent=2) + "\n")
    before = path.read_text()
    assert main(["branch-outcomes", "--task-dir", str(tiny_task_dir), "--out", str(out)]) == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith(f"harness: error: {path}: its run file gives {name} = ") and "rerun the result" in error
    assert path.read_text() == before


def _branch(baseline: str, method: str, rates: dict[str, float], seed: int = 0, gold: bool = False) -> Result:
    result = _result(baseline, method, 0.0, seed)
    return Result(**{**result.__dict__, "per_query_other": {"wrong_branch_rate_l1_at_5_on_miss": rates},
                     "train_info": {"label_source": "gold"} if gold else {}})


def test_the_branch_test_pairs_only_the_queries_every_seed_of_both_rows_missed():
    from harness.leaderboard import branch_comparisons

    frozen = {f"q{i}": 0.8 for i in range(40)}  # 40 misses, each with 80% off-branch distractors
    on_branch = {**{f"q{i}": 0.0 for i in range(30)}, **{f"q{i}": 0.8 for i in range(50, 60)}}  # q30-q39 hit; q50+ only here
    results = [_branch("frozen", "frozen", frozen), _branch("heal", "heal", on_branch, seed=0),
               _branch("heal", "heal", {**on_branch, "q29": 0.4}, seed=1),
               _branch("contrastive", "contrastive", {f"q{i}": 0.8 for i in range(5)}),  # 5 shared misses: untested
               _branch("heal-gold", "heal", {f"q{i}": 0.0 for i in range(40)}, gold=True)]  # label-supervised: left out
    table = branch_comparisons(results)
    pairs = {(row.baseline, row.against_baseline): row for row in table.itertuples()}
    assert set(pairs) == {("heal", "frozen")}
    heal = pairs[("heal", "frozen")]
    assert heal.queries == 30 and heal.seeds == "2 vs 1"  # q0-q29: missed by frozen and by both heal seeds
    assert heal.delta == pytest.approx((29 * 0.0 + 0.2) / 30 - 0.8)  # q29 is 0.0 and 0.4 over heal's two seeds
    assert heal.significant == "yes" and heal.p_holm >= heal.p_value


def test_the_branch_test_reaches_the_report(tmp_path):
    from harness.leaderboard import build
    from harness.report import BRANCH_TESTS, html_report, markdown

    results = [_branch("frozen", "frozen", {f"q{i}": 0.8 for i in range(40)}),
               _branch("heal", "heal", {f"q{i}": 0.1 for i in range(40)})]
    board = build(results, declared={})
    section = markdown(board).split(f"## {BRANCH_TESTS}", 1)[1].split("\n## ", 1)[0]
    assert "wrong_branch_rate_l1_at_5_on_miss" in section and "| 40 |" in section and "-0.7000" in section
    page = html_report(board)
    assert "<h2>Paired comparisons of wrong-branch distractors</h2>" in page and "<td class=\"num\">-0.7000</td>" in page
