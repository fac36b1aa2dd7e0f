"""Speed knobs of sentence-transformers training: early stopping, cached step-0 dev scores, length-grouped batches."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
import torch

from harness.baselines import load_baseline
from harness.errors import HarnessError
from harness.methods import st_training
from harness.methods.base import FitContext
from harness.methods.heal import HEAL
from harness.methods.length_batches import LengthGroupedNoDuplicatesSampler
from harness.methods.selection import DevSelection
from harness.runner import RunSettings, run_one
from harness.task import load_task_folder


@pytest.fixture(autouse=True)
def one_thread_and_private_runs(monkeypatch, tmp_path):
    torch.set_num_threads(1)
    monkeypatch.setenv("HARNESS_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("HARNESS_EMBEDDING_CACHE", str(tmp_path / "embeddings"))


def tiny_overrides(tiny_bert_dir: Path, **extra) -> dict:
    return {"model": str(tiny_bert_dir), "max_steps": 4, "train_batch_size": 12, "eval_steps": 2, "logging_steps": 1,
            "precision": "fp32", "max_seq_length": 48, "encode_batch_size": 16, **extra}


def run(name: str, tiny_task_dir: Path, tiny_bert_dir: Path, out: Path, **extra) -> tuple[dict, bytes]:
    baseline = load_baseline(name, overrides=tiny_overrides(tiny_bert_dir, **extra))
    path = run_one(load_task_folder(tiny_task_dir), baseline, 0, RunSettings(results_dir=out, show_progress=False))
    return json.loads(path.read_text()), gzip.decompress(path.with_suffix(".trec.gz").read_bytes())


def scripted(scores: list[float]):
    values = iter(scores)
    return lambda *args, **kwargs: {"ndcg_at_10": next(values), "mrr_at_10": 0.0, "recall_at_10": 0.0}


def test_selection_stops_after_patience_evaluations_without_a_new_best(tiny_task_dir):
    selection = DevSelection(torch.nn.Linear(2, 2), scripted([0.2, 0.5, 0.4, 0.5, 0.6]), load_task_folder(tiny_task_dir),
                             eval_steps=1, patience=2)
    stops = []
    for step in range(4):
        selection.evaluate(step)
        stops.append(selection.should_stop(step))
    assert stops == [False, False, False, True]  # 0.4 and 0.5 (a tie is not a new best) after the best 0.5 at step 1
    assert selection.best_step == 1 and selection.info(steps=3)["stopped_early_at"] == 3


def test_early_stopping_ends_training_at_the_expected_step_and_keeps_the_best(tiny_task_dir, tiny_bert_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(st_training, "dev_scores", scripted([0.2, 0.5, 0.4, 0.3, 0.9, 0.9, 0.9, 0.9, 0.9]))
    result, _ = run("contrastive", tiny_task_dir, tiny_bert_dir, tmp_path / "out", max_steps=8, eval_steps=1, patience=2)
    info = result["train_info"]
    assert info["steps"] == 3 and info["stopped_early_at"] == 3 and info["selected_step"] == 1
    assert [point["step"] for point in info["dev_curve"]] == [0, 1, 2, 3]
    assert [entry["step"] for entry in info["loss_log"]] == [1, 2, 3]


def test_patience_that_never_runs_out_and_the_step0_cache_change_no_score_or_ranking(tiny_task_dir, tiny_bert_dir, tmp_path):
    default, default_run = run("contrastive", tiny_task_dir, tiny_bert_dir, tmp_path / "default", patience=0, dev_cache_untrained=False)
    knobs, knobs_run = run("contrastive", tiny_task_dir, tiny_bert_dir, tmp_path / "knobs", patience=99, dev_cache_untrained=True)
    assert "stopped_early_at" not in default["train_info"] and knobs["train_info"]["stopped_early_at"] is None
    assert knobs["scores"] == default["scores"] and knobs_run == default_run
    assert knobs["train_info"]["dev_curve"] == default["train_info"]["dev_curve"]
    assert knobs["run_info"]["key"]["config_hash"] != default["run_info"]["key"]["config_hash"]


def test_the_step0_dev_evaluation_is_shared_through_the_embedding_cache(tiny_task_dir, tiny_bert_dir, tmp_path):
    first, _ = run("contrastive", tiny_task_dir, tiny_bert_dir, tmp_path / "a", dev_cache_untrained=True)
    cached = sorted((tmp_path / "embeddings").glob("*.npy"))
    assert len(cached) == 2  # dev documents and dev queries of the base model
    lora, _ = run("lora", tiny_task_dir, tiny_bert_dir, tmp_path / "b", dev_cache_untrained=True)
    assert sorted((tmp_path / "embeddings").glob("*.npy")) == cached  # lora's step 0 hit them: a fresh adapter adds zero
    assert lora["train_info"]["dev_curve"][0] == first["train_info"]["dev_curve"][0]


def pairs(rows: int, documents: int):
    """(query, document) rows where each document answers rows // documents queries, lengths varying with the row."""
    from datasets import Dataset

    return Dataset.from_dict({"anchor": [f"query {i} " + "word " * (i % 7) for i in range(rows)],
                              "positive": [f"document {i % documents} " + "text " * (i % documents) for i in range(rows)]})


@pytest.mark.parametrize("rows, documents, batch_size", [(100, 100, 8), (120, 13, 8), (64, 4, 16)])
def test_length_grouped_batches_are_duplicate_free_and_cover_every_pair_once_per_epoch(rows, documents, batch_size):
    dataset = pairs(rows, documents)
    lengths = [len(a) + len(p) for a, p in zip(dataset["anchor"], dataset["positive"])]
    sampler = LengthGroupedNoDuplicatesSampler(dataset, batch_size, drop_last=False, generator=torch.Generator(), seed=3,
                                               lengths=lengths, window=2)
    epochs = []
    for epoch in range(2):
        sampler.set_epoch(epoch)
        batches = list(sampler)
        assert sorted(i for batch in batches for i in batch) == list(range(rows))
        for batch in batches:
            texts = [dataset[i]["positive"] for i in batch] + [dataset[i]["anchor"] for i in batch]
            assert len(set(texts)) == len(texts) and len(batch) <= batch_size
        epochs.append(batches)
    assert epochs[0] != epochs[1]
    sampler.set_epoch(0)
    assert list(sampler) == epochs[0]  # the seed and epoch decide the order


def test_length_grouped_batches_hold_rows_of_similar_length():
    dataset = pairs(256, 256)
    lengths = [(i * 37) % 256 for i in range(256)]
    sampler = LengthGroupedNoDuplicatesSampler(dataset, 16, drop_last=False, generator=torch.Generator(), seed=0, lengths=lengths, window=16)
    spreads = [max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in sampler]
    assert len(spreads) == 16 and max(spreads) == 15  # one window: 16 batches of 16 consecutive lengths


def test_contrastive_trains_on_length_grouped_batches(tiny_task_dir, tiny_bert_dir, tmp_path):
    result, _ = run("contrastive", tiny_task_dir, tiny_bert_dir, tmp_path / "out", length_grouped_batches=True)
    assert result["train_info"]["steps"] == 4 and result["run_info"]["config"]["length_grouped_batches"] is True


def test_heal_refuses_length_grouped_batches(tiny_task_dir, tiny_bert_dir, tmp_path):
    config = load_baseline("heal", overrides=tiny_overrides(tiny_bert_dir, label_source="gold", members_per_leaf=3,
                                                            length_grouped_batches=True)).config
    with pytest.raises(HarnessError, match="hierarchy sampler"):
        HEAL().fit(load_task_folder(tiny_task_dir), config, FitContext(run_dir=tmp_path / "run", seed=0, device="cpu"))


def test_length_buckets_give_the_library_mnrl_loss_and_gradients(tiny_bert_dir):
    """Bucketing a column by length only drops padding: the same loss and gradients as the library's MNRL."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    from harness.methods.length_buckets import LengthBucketedMNRL

    model = SentenceTransformer(str(tiny_bert_dir), device="cpu").eval()  # eval: no dropout, so two passes compare
    queries = [f"query {'word ' * (i % 4)}{i}" for i in range(12)]
    documents = [("a much longer document text that goes on " * (1 + i % 5)) + str(i) for i in range(12)]
    features = [dict(model.preprocess(queries)), dict(model.preprocess(documents))]

    def loss_and_grads(loss_fn):
        model.zero_grad()
        loss = loss_fn([dict(f) for f in features], None)
        loss.backward()
        return loss.detach(), [p.grad.clone() for p in model.parameters() if p.grad is not None]

    expected_loss, expected_grads = loss_and_grads(MultipleNegativesRankingLoss(model, scale=20.0))
    got_loss, got_grads = loss_and_grads(LengthBucketedMNRL(model, scale=20.0, length_buckets=3))
    assert torch.allclose(got_loss, expected_loss, atol=1e-6)
    assert len(got_grads) == len(expected_grads) > 0
    assert all(torch.allclose(g, e, atol=1e-6, rtol=1e-4) for g, e in zip(got_grads, expected_grads))
    widths = []
    model[0].register_forward_hook(lambda module, args, output: widths.append(args[0]["input_ids"].shape[1]))
    LengthBucketedMNRL(model, scale=20.0, length_buckets=3)([dict(f) for f in features], None)
    assert len(widths) == 6 and widths[3] > widths[5]  # three passes per column, the shorter rows cut shorter


def test_contrastive_trains_with_length_buckets_under_its_own_key(tiny_task_dir, tiny_bert_dir, tmp_path):
    one_pass, _ = run("contrastive", tiny_task_dir, tiny_bert_dir, tmp_path / "one")
    bucketed, _ = run("contrastive", tiny_task_dir, tiny_bert_dir, tmp_path / "bucketed", length_buckets=3)
    assert bucketed["run_info"]["config"]["length_buckets"] == 3 and bucketed["train_info"]["steps"] == 4
    # dropout draws its masks for other shapes in another order, so this is a new result, not a rerun of the stored one
    assert bucketed["run_info"]["key"] != one_pass["run_info"]["key"]
    assert "length_buckets" not in one_pass["run_info"]["key"] and 0.0 < bucketed["scores"]["test"][0]["ndcg_at_10"] <= 1.0


@pytest.mark.parametrize("overrides, message", [({"length_buckets": 0}, "length_buckets must be >= 1"),
                                                ({"length_buckets": 2, "loss": "cached_mnrl"}, "applies to loss")])
def test_length_buckets_reject_settings_they_cannot_serve(tiny_task_dir, tiny_bert_dir, overrides, message):
    config = load_baseline("contrastive", overrides=tiny_overrides(tiny_bert_dir, **overrides)).config
    with pytest.raises(HarnessError, match=message):
        config.check(load_task_folder(tiny_task_dir))
