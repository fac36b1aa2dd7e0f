"""Causal LMs as embedders: loading, pooling, contrastive batches and loss, and `llm-frozen`/`llm-cl` through the runner."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from harness.baselines import Baseline, load_baseline
from harness.config_fields import hashed_fields
from harness.errors import HarnessError
from harness.llm import causal_lm_dir, load_causal_lm
from harness.methods.base import FitContext
from harness.methods.causal_training import Schedule
from harness.methods.in_batch import DuplicateFreeBatches, false_negatives, info_nce, positives_by_query
from harness.methods.llm_embedders import LLMContrastiveConfig, LLMFrozen, LLMFrozenConfig
from harness.paths import BASELINES_DIR
from harness.runner import RunSettings, run_one
from harness.task import load_task_folder
from llm_fixtures import save_tiny_llama

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def tiny_llama_dir(tmp_path_factory) -> Path:
    return save_tiny_llama(tmp_path_factory.mktemp("tiny-llama"))


def frozen_encoder(model: Path, tmp_path: Path, **changes):
    config = LLMFrozenConfig(model=str(model), precision="fp32", **changes)
    context = FitContext(run_dir=tmp_path, seed=0, device="cpu", show_progress=False)
    return LLMFrozen().fit(None, config, context).retriever


def test_load_causal_lm_pads_on_the_right_with_eos_when_the_tokenizer_has_no_pad_token(tiny_llama_dir):
    model, tokenizer = load_causal_lm(str(tiny_llama_dir))

    assert tokenizer.pad_token == "</s>" and tokenizer.pad_token_id == tokenizer.eos_token_id == 2
    assert tokenizer.padding_side == "right"
    assert not model.training


def test_causal_lm_dir_rejects_a_folder_without_config_and_an_unknown_name(tmp_path):
    with pytest.raises(HarnessError, match="no config.json"):
        causal_lm_dir(str(tmp_path))
    with pytest.raises(HarnessError, match="neither a packaged alias"):
        causal_lm_dir("no-such-model")


@pytest.mark.parametrize("pooling", ["mean", "last"])
def test_llm_frozen_rows_are_unit_float32_and_do_not_depend_on_batching(pooling, tiny_llama_dir, tmp_path):
    texts = ["port probe scan", "email lure link attachment phish", "worm", "the adversary may use a dropper"]

    one_by_one = frozen_encoder(tiny_llama_dir, tmp_path, pooling=pooling, encode_batch_size=1).encode(texts, "document")
    batched = frozen_encoder(tiny_llama_dir, tmp_path, pooling=pooling, encode_batch_size=4).encode(texts, "document")

    assert batched.dtype == np.float32 and batched.shape == (4, 32)
    assert np.allclose(np.linalg.norm(batched, axis=1), 1.0, atol=1e-5)
    assert np.allclose(one_by_one, batched, atol=1e-5)


def test_last_pooling_reads_the_state_of_an_appended_eos_token(tiny_llama_dir, tmp_path):
    model, tokenizer = load_causal_lm(str(tiny_llama_dir))
    ids = tokenizer("port probe scan")["input_ids"] + [tokenizer.eos_token_id]
    with torch.no_grad():
        expected = F.normalize(model.get_decoder()(input_ids=torch.tensor([ids])).last_hidden_state[0, -1], dim=0)

    vector = frozen_encoder(tiny_llama_dir, tmp_path, pooling="last").encode(["port probe scan"], "query")[0]

    assert np.allclose(vector, expected.numpy(), atol=1e-5)


def test_an_unknown_pooling_is_a_one_line_error(tiny_llama_dir, tmp_path):
    with pytest.raises(HarnessError, match="pooling must be one of mean, last"):
        frozen_encoder(tiny_llama_dir, tmp_path, pooling="cls")


def test_duplicate_free_batches_never_repeat_a_document_or_query_and_cover_every_pair_each_epoch():
    pairs = [("q1", "d1"), ("q2", "d1"), ("q3", "d1"), ("q4", "d2"), ("q5", "d3"), ("q1", "d4"), ("q6", "d2")]
    batches = iter(DuplicateFreeBatches(pairs, 3, random.Random(0)))

    seen = []
    while len(seen) < len(pairs):
        batch = next(batches)
        assert len({pairs[i][0] for i in batch}) == len(batch) == len({pairs[i][1] for i in batch})
        seen += batch

    assert sorted(seen) == list(range(len(pairs)))


def test_contrastive_batches_need_two_distinct_documents():
    with pytest.raises(HarnessError, match="at least 2 distinct documents"):
        DuplicateFreeBatches([("q1", "d1"), ("q2", "d1")], 4, random.Random(0))


def test_false_negatives_mark_other_positives_of_a_query_in_the_batch():
    positives = positives_by_query([("q1", "d1"), ("q1", "d2"), ("q2", "d2")])

    mask = false_negatives(["q1", "q2"], ["d1", "d2"], positives)

    assert mask.tolist() == [[False, True], [False, False]]


def test_info_nce_drops_masked_documents_from_the_negatives():
    queries = F.normalize(torch.tensor([[1.0, 0.0], [0.0, 1.0]]), dim=1)
    docs = F.normalize(torch.tensor([[1.0, 0.2], [0.3, 1.0], [1.0, 0.0]]), dim=1)
    masked = torch.tensor([[False, False, True], [False, False, False]])
    scores = queries @ docs.T / 0.1

    masked_loss = info_nce(queries, docs, 0.1, masked)

    expected = -(torch.log_softmax(scores[0, :2], 0)[0] + torch.log_softmax(scores[1], 0)[1]) / 2
    assert torch.isclose(masked_loss, expected)
    assert info_nce(queries, docs, 0.1) > masked_loss  # the masked document scored highest for query 0


def test_schedule_warms_up_linearly_then_decays_to_zero():
    schedule = Schedule(steps=20, lr=1.0, warmup_ratio=0.1)

    assert [schedule.factor(s) for s in (0, 1)] == [0.5, 1.0]
    assert schedule.factor(2) == 1.0 and schedule.factor(11) == pytest.approx(0.5)
    assert schedule.factor(20) == pytest.approx(0.0)


def test_llm_frozen_runs_end_to_end_through_the_runner(tiny_llama_dir, tiny_task_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_RUNS_DIR", str(tmp_path / "runs"))
    baseline = load_baseline("llm-frozen", overrides={"model": str(tiny_llama_dir)})
    task = load_task_folder(tiny_task_dir)

    written = run_one(task, baseline, 0, RunSettings(results_dir=tmp_path / "results", show_progress=False))

    result = json.loads(written.read_text())
    assert result["train_info"] == {"trained": False}
    assert result["run_info"]["n_queries"] == 12 and 0.0 < result["scores"]["test"][0]["ndcg_at_10"] <= 1.0


def run_llm_cl(tiny_llama_dir: Path, tiny_task_dir: Path, tmp_path: Path, **changes) -> dict:
    config = LLMContrastiveConfig(model=str(tiny_llama_dir), max_steps=30, train_batch_size=6, learning_rate=1e-3, lora_rank=4,
                                  precision="fp32", **changes)
    task = load_task_folder(tiny_task_dir)
    written = run_one(task, Baseline("llm-cl", "llm-cl", config), 0, RunSettings(results_dir=tmp_path / "results", show_progress=False))
    return json.loads(written.read_text())


def test_llm_cl_runs_through_the_runner_lowers_its_loss_and_saves_its_adapter(tiny_llama_dir, tiny_task_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_RUNS_DIR", str(tmp_path / "runs"))

    result = run_llm_cl(tiny_llama_dir, tiny_task_dir, tmp_path)

    info = result["train_info"]
    assert result["run_info"]["method"] == "llm-cl" and 0.0 < result["scores"]["test"][0]["ndcg_at_10"] <= 1.0
    assert info["steps"] == 30 and info["train_pairs"] == 30
    assert [entry["step"] for entry in info["loss_log"]] == [3, 6, 9, 12, 15, 18, 21, 24, 27, 30]
    assert info["loss_log"][-1]["loss"] < info["loss_log"][0]["loss"] / 2
    assert info["selected_step"] == 30 and info["dev_curve"] == []  # eval_steps = 0: no selection, the last step
    assert (Path(info["adapter"]) / "adapter_model.safetensors").exists()


def test_llm_cl_selects_the_dev_best_step_like_the_sentence_transformers_methods(tiny_llama_dir, tiny_task_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_RUNS_DIR", str(tmp_path / "runs"))

    info = run_llm_cl(tiny_llama_dir, tiny_task_dir, tmp_path, eval_steps=10)["train_info"]

    assert [point["step"] for point in info["dev_curve"]] == [0, 10, 20, 30]
    best = max(info["dev_curve"], key=lambda point: point["ndcg_at_10"])  # first of equals, as selection keeps it
    assert info["selected_step"] == best["step"] and info["dev_eval_seconds"] > 0


def test_llm_configs_keep_the_hash_of_their_old_field_names():
    config = LLMContrastiveConfig(max_steps=64, learning_rate=2e-4, encode_batch_size=32)

    hashed = hashed_fields(config)
    assert {hashed["steps"], hashed["lr"], hashed["batch_size"]} == {64, 2e-4, 32}
    assert not {"max_steps", "learning_rate", "encode_batch_size", "eval_steps", "dev_max_queries"} & set(hashed)
    assert "lora_targets" in hashed and hashed_fields(LLMContrastiveConfig(eval_steps=32))["eval_steps"] == 32


@pytest.mark.parametrize("name", ["llm-frozen", "llm-cl", "lbr", "lbr-nomask", "llm-frozen-gpu", "llm-cl-gpu", "lbr-gpu", "lbr-nomask-gpu"])
def test_every_llm_baseline_file_loads_with_known_keys(name):
    baseline = load_baseline(name)

    assert (BASELINES_DIR / f"{name}.toml").exists()
    assert baseline.method == name.removesuffix("-gpu").replace("lbr-nomask", "lbr")
    assert baseline.config.model == "smollm2"


def test_lbr_nomask_differs_from_lbr_only_in_the_mask():
    lbr, nomask = load_baseline("lbr").config_dict, load_baseline("lbr-nomask").config_dict

    assert {key for key in lbr if lbr[key] != nomask[key]} == {"bottleneck_mask"}
    assert lbr["bottleneck_mask"] is True


@pytest.mark.integration
def test_packaged_smollm2_loads_offline_and_embeds_two_texts(tmp_path):
    encoder = frozen_encoder("smollm2", tmp_path)

    vectors = encoder.encode(["Adversaries may obfuscate command and control traffic.", "A phishing email with a malicious link."], "document")

    assert vectors.shape == (2, 576) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    assert not np.allclose(vectors[0], vectors[1], atol=1e-3)
