"""Dense hard-negative mining (`hard_negative_miner = "dense"`): sentence-transformers' miner, checked against the qrels."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from harness.baselines import load_baseline
from harness.config_fields import hashed_fields
from harness.errors import HarnessError
from harness.methods.contrastive import ContrastiveConfig, pairs_dataset
from harness.methods.hard_negatives import dense_negatives, relevant_documents
from harness.task import load_task_folder
from tests.conftest import tiny_corpus, write_beir


def several_relevant_task(tmp_path):
    """The tiny task, where every train query is also relevant to the two sibling documents of its own."""
    corpus, queries, qrels = tiny_corpus()
    for qid, docs in qrels["train"].items():
        (did,) = docs
        stem = did.rsplit("-", 1)[0]
        qrels["train"][qid] = {f"{stem}-{i}": 1 for i in range(3)}
    return load_task_folder(write_beir(tmp_path / "several", corpus, queries, qrels))


def dense_config(model_dir, **fields) -> ContrastiveConfig:
    return ContrastiveConfig(model=str(model_dir), hard_negative_miner="dense", precision="fp32", **fields)


@pytest.fixture(scope="module")
def tiny_model(tiny_bert_dir):
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(tiny_bert_dir), device="cpu")


def cosine(model, task, qid, did) -> float:
    query, doc = model.encode([task.queries[qid], task.corpus[did].full_text], normalize_embeddings=True)
    return float(np.dot(query, doc))


def test_mined_negatives_are_never_relevant_to_their_query(tmp_path, tiny_bert_dir, tiny_model):
    task = several_relevant_task(tmp_path)
    negatives = dense_negatives(task, dense_config(tiny_bert_dir, hard_negatives=5), tiny_model, seed=0)
    relevant = relevant_documents(task)
    assert set(negatives) == set(task.qrels["train"])  # 18 documents, 3 relevant: 5 negatives always fit
    for qid, mined in negatives.items():
        assert len(mined) == len(set(mined)) == 5 and not set(mined) & relevant[qid]


def test_the_margin_drops_candidates_scoring_within_it_of_the_weakest_positive(tmp_path, tiny_bert_dir, tiny_model):
    task = load_task_folder(write_beir(tmp_path / "tiny", *tiny_corpus()))
    unfiltered = dense_negatives(task, dense_config(tiny_bert_dir, hard_negatives=1), tiny_model, seed=0)
    gaps = {qid: cosine(tiny_model, task, qid, next(iter(task.qrels["train"][qid]))) - cosine(tiny_model, task, qid, mined[0])
            for qid, mined in unfiltered.items()}
    margin = 0.005  # the random model often scores a negative above the positive: those candidates go
    filtered = dense_negatives(task, dense_config(tiny_bert_dir, hard_negatives=1, hard_negative_margin=margin),
                               tiny_model, seed=0)
    for qid, mined in filtered.items():
        positive = cosine(tiny_model, task, qid, next(iter(task.qrels["train"][qid])))
        assert cosine(tiny_model, task, qid, mined[0]) <= positive - margin + 1e-5
    changed = {qid for qid, gap in gaps.items() if gap < margin}
    assert changed and all(filtered.get(qid) != unfiltered[qid] for qid in changed)


def test_dense_negatives_become_an_extra_column_of_the_training_rows(tiny_task_dir, tiny_bert_dir, tiny_model):
    task = load_task_folder(tiny_task_dir)
    dataset = pairs_dataset(task, dense_config(tiny_bert_dir, hard_negatives=1, hard_negative_skip=1), tiny_model, seed=0)
    assert dataset.column_names == ["anchor", "positive", "negative_1"] and len(dataset) == 30
    documents = {d.full_text: did for did, d in task.corpus.items()}
    queries = {text: qid for qid, text in task.queries.items()}
    for row in dataset:
        assert documents[row["negative_1"]] not in task.qrels["train"][queries[row["anchor"]]]


def test_the_miner_fields_leave_a_config_hash_alone_until_they_are_set():
    for name in ("contrastive", "lora"):
        baseline = load_baseline(name)
        hashed = hashed_fields(baseline.config)
        assert {key for key in hashed if key.startswith("hard_negative")} == {"hard_negatives", "hard_negative_skip"}
        dense = replace(baseline, config=replace(baseline.config, hard_negatives=1, hard_negative_miner="dense"))
        assert dense.config_hash != replace(baseline, config=replace(baseline.config, hard_negatives=1)).config_hash


def test_dense_only_filters_are_refused_with_the_bm25_miner(tiny_task_dir):
    task = load_task_folder(tiny_task_dir)
    with pytest.raises(HarnessError, match="only apply to hard_negative_miner = 'dense'"):
        ContrastiveConfig(hard_negatives=1, hard_negative_margin=0.1).check(task)
    with pytest.raises(HarnessError, match="hard_negatives >= 1"):
        replace(ContrastiveConfig(), hard_negative_miner="dense").check(task)


def test_lora_trains_on_dense_negatives_mined_before_its_adapter(tiny_task_dir, tiny_bert_dir, tmp_path):
    from harness.methods.base import FitContext
    from harness.methods.lora import LoRA, LoRAConfig

    config = LoRAConfig(model=str(tiny_bert_dir), precision="fp32", max_steps=2, eval_steps=0, train_batch_size=8,
                        hard_negative_miner="dense", hard_negatives=1, hard_negative_skip=1)
    fitted = LoRA().fit(load_task_folder(tiny_task_dir), config, FitContext(tmp_path, seed=0, device="cpu", show_progress=False))
    assert fitted.train_info["steps"] == 2 and fitted.train_info["train_rows"] == 30
    assert fitted.train_info["finetune"] == "lora"
