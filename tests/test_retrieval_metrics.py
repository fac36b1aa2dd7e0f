"""Retrieval metrics equal hand-computed values, pytrec_eval itself, and mteb's own scorer."""

from __future__ import annotations

import math
import random

import pytest
import pytrec_eval

from harness.metrics.retrieval import per_query_scores, retrieval_scores


def test_hand_computed_example():
    qrels = {"q1": {"d1": 1, "d3": 1}, "q2": {"d9": 1}}
    run = {"q1": {"d2": 0.9, "d1": 0.8, "d4": 0.7, "d3": 0.6}, "q2": {"d5": 0.5, "d6": 0.4}}
    scores = per_query_scores(qrels, run, k_values=(1, 3, 5))
    q1 = scores["q1"]
    dcg3 = 1 / math.log2(3)
    idcg = 1 + 1 / math.log2(3)
    assert q1["mrr_at_1"] == 0.0 and q1["mrr_at_3"] == 0.5
    assert q1["ndcg_at_3"] == pytest.approx(dcg3 / idcg)
    assert q1["ndcg_at_5"] == pytest.approx((dcg3 + 1 / math.log2(5)) / idcg)
    assert q1["recall_at_3"] == 0.5 and q1["recall_at_5"] == 1.0
    assert q1["precision_at_3"] == pytest.approx(1 / 3)
    assert q1["hit_rate_at_1"] == 0.0 and q1["hit_rate_at_3"] == 1.0
    assert q1["map_at_5"] == pytest.approx((1 / 2 + 2 / 4) / 2)
    assert all(v == 0.0 for v in scores["q2"].values())
    assert retrieval_scores(qrels, run, (1, 3, 5))["recall_at_5"] == 0.5


def test_identical_query_and_document_ids_are_not_ignored():
    # BEIR's evaluator drops a document whose id equals the query id by default; mteb and the harness do not.
    scores = retrieval_scores({"q1": {"d1": 1}}, {"q1": {"q1": 0.99, "d1": 0.5}}, (1,))
    assert scores["ndcg_at_1"] == 0.0


def test_a_query_missing_from_the_run_scores_zero():
    scores = retrieval_scores({"q1": {"d1": 1}, "q2": {"d1": 1}}, {"q1": {"d1": 1.0}}, (1,))
    assert scores["ndcg_at_1"] == 0.5


def _random_case(seed: int):
    rng = random.Random(seed)
    docs = [f"d{i}" for i in range(40)]
    qrels = {f"q{i}": {d: rng.choice([1, 2]) for d in rng.sample(docs, rng.randint(1, 4))} for i in range(30)}
    run = {q: {d: rng.random() for d in rng.sample(docs, 25)} for q in qrels}
    return qrels, run


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_pytrec_eval_on_random_runs(seed):
    qrels, run = _random_case(seed)
    ours = per_query_scores(qrels, run, (1, 5, 10))
    reference = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10", "map_cut.5", "recall.10", "P.5", "recip_rank"}).evaluate(run)
    for qid in qrels:
        assert ours[qid]["ndcg_at_10"] == pytest.approx(reference[qid]["ndcg_cut_10"], abs=1e-12)
        assert ours[qid]["map_at_5"] == pytest.approx(reference[qid]["map_cut_5"], abs=1e-12)
        assert ours[qid]["recall_at_10"] == pytest.approx(reference[qid]["recall_10"], abs=1e-12)
        assert ours[qid]["precision_at_5"] == pytest.approx(reference[qid]["P_5"], abs=1e-12)
        reciprocal_rank = reference[qid]["recip_rank"]  # full depth; MRR@10 keeps it only within rank 10
        assert ours[qid]["mrr_at_10"] == pytest.approx(reciprocal_rank if reciprocal_rank >= 0.1 else 0.0)


@pytest.mark.parametrize("seed", [3, 4])
def test_matches_mteb_scorer_on_random_runs(seed):
    from mteb._evaluators.retrieval_metrics import calculate_retrieval_scores

    qrels, run = _random_case(seed)
    ours = retrieval_scores(qrels, run, (1, 3, 10))
    theirs = calculate_retrieval_scores(run, qrels, [1, 3, 10])
    for k in (1, 3, 10):
        assert ours[f"ndcg_at_{k}"] == pytest.approx(theirs.ndcg[f"NDCG@{k}"], abs=1e-5)  # mteb rounds to 5 places
        assert ours[f"map_at_{k}"] == pytest.approx(theirs.map[f"MAP@{k}"], abs=1e-5)
        assert ours[f"recall_at_{k}"] == pytest.approx(theirs.recall[f"Recall@{k}"], abs=1e-5)
        assert ours[f"mrr_at_{k}"] == pytest.approx(theirs.mrr[f"MRR@{k}"], abs=1e-12)
        assert ours[f"hit_rate_at_{k}"] == pytest.approx(theirs.hit_rate[f"HitRate@{k}"], abs=1e-5)
