"""Built tasks open in the tools people already use: BEIR's loader and mteb.evaluate, with the same scores."""

from __future__ import annotations

from dataclasses import replace

import pytest

from harness.catalog import apply_profile, ensure_built, load_task, resolve_card
from harness.encoders import EncodeSettings, SentenceTransformerEncoder, load_sentence_transformer
from harness.methods.base import Fitted
from harness.metrics.retrieval import retrieval_scores
from harness.models import resolve_model_path
from harness.mteb_task import to_mteb_task
from harness.runner import retrieve
from harness.task import load_task_folder
from harness.taskcard import Profile


def _harness_and_mteb_ndcg(task, model_path):
    import mteb

    model = load_sentence_transformer(model_path, "cpu")
    encoder = SentenceTransformerEncoder(model, EncodeSettings(batch_size=32, precision="fp32", show_progress=False), "cpu")
    ours = retrieval_scores(task.qrels["test"], retrieve(task, Fitted(encoder), "test", 100))["ndcg_at_10"]
    result = mteb.evaluate(model, to_mteb_task(task), cache=None, overwrite_strategy="always", show_progress_bar=False)
    return ours, result.task_results[0].scores["test"][0]["ndcg_at_10"]


def test_mteb_evaluate_gives_the_harness_ndcg_on_a_tiny_task(tiny_task_dir, tiny_bert_dir):
    ours, theirs = _harness_and_mteb_ndcg(load_task_folder(tiny_task_dir), tiny_bert_dir)
    assert ours == pytest.approx(theirs, abs=1e-4)


def test_beir_generic_data_loader_reads_a_task_folder(tiny_task_dir):
    from beir.datasets.data_loader import GenericDataLoader

    corpus, queries, qrels = GenericDataLoader(str(tiny_task_dir)).load(split="test")
    assert len(corpus) == 18 and len(queries) == 12 and sum(len(d) for d in qrels.values()) == 12


@pytest.mark.integration
def test_cyber_builds_loads_in_beir_and_rebuilds_byte_identically(tmp_path, monkeypatch):
    from beir.datasets.data_loader import GenericDataLoader

    card = resolve_card("cyber")
    folder = ensure_built(card)
    corpus, queries, qrels = GenericDataLoader(str(folder)).load(split="test")
    assert len(corpus) == 637 and len(qrels) == 2000
    task = load_task_folder(folder)
    texts = {split: {task.queries[q] for q in pairs} for split, pairs in task.qrels.items()}
    assert not (texts["train"] & texts["test"]) and not (texts["dev"] & texts["test"]) and not (texts["train"] & texts["dev"])
    assert {len(doc.labels) for doc in task.corpus.values()} == {2, 3}
    assert task.corpus["T1055.011"].labels == ("Privilege Escalation", "T1055 Process Injection", "T1055.011 Extra Window Memory Injection")

    monkeypatch.setenv("HARNESS_DATA_DIR", str(tmp_path))
    rebuilt = ensure_built(card)
    assert rebuilt != folder
    for name in ("corpus.jsonl", "queries.jsonl", "qrels/train.tsv", "qrels/dev.tsv", "qrels/test.tsv", "build_info.json"):
        assert (rebuilt / name).read_bytes() == (folder / name).read_bytes()


@pytest.mark.integration
def test_cyber_through_mteb_evaluate_matches_the_harness_with_minilm():
    task = load_task("cyber", profile="full")
    task = replace(apply_profile(task, Profile(max_test_queries=150)), name="cyber")
    ours, theirs = _harness_and_mteb_ndcg(task, resolve_model_path("minilm"))
    assert ours == pytest.approx(theirs, abs=1e-4)
