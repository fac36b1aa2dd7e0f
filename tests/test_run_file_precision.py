"""A stored run file scores exactly as the run it was written from, ties and near-ties included."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from harness.metrics.retrieval import per_query_scores
from harness.results import read_trec_run, trec_run_text


def _adjacent_float32_scores(start: float, count: int) -> list[float]:
    """Neighbouring float32 values, descending, as exact_search returns scores."""
    values = [np.float32(start)]
    while len(values) < count:
        values.append(np.nextafter(values[-1], np.float32(0)))
    return [float(v) for v in values]


STEPS = _adjacent_float32_scores(0.123456, 12)  # `.8g`: 0.123456, 0.12345599 twice, ..., 0.12345593 twice (ranks 10, 11)
QRELS = {"near-tie": {"a": 1}, "tie": {"m": 1}, "cut": {"j": 1}}
RUN = {
    # a scores one float32 step above z; rounded to 8 digits they tie and z (higher id) would move first
    "near-tie": {"a": STEPS[1], "z": STEPS[2], "b": 0.1},
    # an exact tie is broken by doc id, descending, in the file as in pytrec_eval
    "tie": {"m": 0.5, "n": 0.5, "b": 0.25},
    # j is 10th and k 11th; rounded to 8 digits they tie and j would drop out of the top 10
    "cut": dict(zip("abcdefghijkl", STEPS)),
}


def _write_and_read(run, tmp_path):
    path = tmp_path / "run.trec.gz"
    path.write_bytes(gzip.compress(trec_run_text(run, "test").encode("utf-8")))
    return read_trec_run(path)


def test_scores_read_back_exactly(tmp_path):
    assert _write_and_read(RUN, tmp_path) == RUN


def test_rank_column_follows_score_then_doc_id_descending():
    lines = [line.split() for line in trec_run_text({"tie": RUN["tie"]}, "test").splitlines()]
    assert [(doc, rank) for _, _, doc, rank, _, _ in lines] == [("n", "1"), ("m", "2"), ("b", "3")]


def test_metrics_at_10_on_the_stored_run_equal_the_metrics_on_the_run(tmp_path):
    expected = per_query_scores(QRELS, RUN)
    stored = per_query_scores(QRELS, _write_and_read(RUN, tmp_path))
    for qid, row in expected.items():
        for name in (name for name in row if name.endswith("_at_10")):
            assert stored[qid][name] == pytest.approx(row[name], abs=1e-6), (qid, name)
