"""contrastive, lora and heal: a few steps on the tiny BERT and task, saved, reloaded and scored by the runner."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from harness.baselines import load_baseline
from harness.errors import HarnessError
from harness.methods.hnmfk import Hierarchy
from harness.metrics.retrieval import retrieval_scores
from harness.methods import heal as heal_method
from harness.methods.base import FitContext
from harness.methods.contrastive import pairs_dataset
from harness.methods.hard_negatives import bm25_negatives
from harness.methods.heal import HEAL, label_table
from harness.runner import RunSettings, run_one
from harness.search import exact_search
from harness.task import load_task_folder
from harness.methods.selection import DevSelection
from harness.methods.st_training import lora_targets

# lenient hnmfk settings, so that the 18 tiny documents split at all
TINY_HNMFK = {"noise": 0.05, "min_df": 1, "max_df": 0.9, "min_cluster_size": 4, "k_max": 3, "n_perturbations": 6,
              "silhouette_threshold": 0.2}


@pytest.fixture(autouse=True)
def one_thread_and_private_runs(monkeypatch, tmp_path):
    torch.set_num_threads(1)
    monkeypatch.setenv("HARNESS_RUNS_DIR", str(tmp_path / "runs"))


def tiny_overrides(tiny_bert_dir: Path, **extra) -> dict:
    return {"model": str(tiny_bert_dir), "max_steps": 4, "train_batch_size": 12, "eval_steps": 2, "logging_steps": 1,
            "precision": "fp32", "max_seq_length": 48, "encode_batch_size": 16, **extra}


def train_and_score(name: str, tiny_task_dir: Path, tiny_bert_dir: Path, tmp_path: Path, **extra) -> dict:
    task = load_task_folder(tiny_task_dir)
    baseline = load_baseline(name, overrides=tiny_overrides(tiny_bert_dir, **extra))
    path = run_one(task, baseline, 0, RunSettings(results_dir=tmp_path / "results", show_progress=False))
    return json.loads(path.read_text())


def reloaded_test_ndcg(model_path: str, tiny_task_dir: Path) -> float:
    """Score the saved model from disk alone, offline, the way the runner scores."""
    from sentence_transformers import SentenceTransformer

    task = load_task_folder(tiny_task_dir)
    model = SentenceTransformer(model_path, device="cpu", local_files_only=True)
    queries = task.split_queries("test")
    doc_ids = list(task.corpus)
    docs = model.encode([task.corpus[d].full_text for d in doc_ids], normalize_embeddings=True)
    query_vectors = model.encode([queries[q] for q in queries], normalize_embeddings=True)
    run = exact_search(list(queries), query_vectors, doc_ids, docs, k=100)
    return retrieval_scores(task.qrels["test"], run)["ndcg_at_10"]


def assert_trained_and_selected_on_dev(info: dict) -> None:
    assert info["trained"] and info["steps"] == 4
    curve = info["dev_curve"]
    assert [point["step"] for point in curve] == [0, 2, 4]
    best = max(curve, key=lambda point: point["ndcg_at_10"])  # first of equals, as selection keeps it
    assert info["selected_step"] == best["step"]
    assert [entry["step"] for entry in info["loss_log"]] == [1, 2, 3, 4]


def test_contrastive_trains_saves_and_reloads_to_the_scores_the_runner_wrote(tiny_task_dir, tiny_bert_dir, tmp_path, capsys):
    result = train_and_score("contrastive", tiny_task_dir, tiny_bert_dir, tmp_path)
    info = result["train_info"]
    assert_trained_and_selected_on_dev(info)
    assert "'loss'" not in capsys.readouterr().out  # quiet runs do not print the trainer's log dicts
    assert info["finetune"] == "full" and info["train_rows"] == 30  # one row per positive train qrel
    assert (Path(info["model_path"]) / "model.safetensors").is_file()
    score = result["scores"]["test"][0]["ndcg_at_10"]
    assert reloaded_test_ndcg(info["model_path"], tiny_task_dir) == pytest.approx(score, abs=1e-5)


def test_dev_selection_restores_the_weights_of_the_best_dev_step(tiny_task_dir):
    dev_ndcg = iter([0.2, 0.5, 0.4])
    model = torch.nn.Linear(2, 2)
    score = lambda: {"ndcg_at_10": next(dev_ndcg), "mrr_at_10": 0.0, "recall_at_10": 0.0}  # noqa: E731
    selection = DevSelection(model, score, load_task_folder(tiny_task_dir), eval_steps=1)
    for step in range(3):
        with torch.no_grad():
            model.weight.fill_(float(step))
        selection.evaluate(step)
    selection.restore_best()
    assert selection.best_step == 1 and torch.equal(model.weight, torch.ones(2, 2))
    assert [point["ndcg_at_10"] for point in selection.curve] == [0.2, 0.5, 0.4]
    assert selection.info(steps=2)["selected_step"] == 1


def test_hard_negatives_are_the_best_bm25_documents_that_are_not_relevant(tiny_task_dir):
    from harness.methods.bm25 import BM25Config, BM25Searcher

    task = load_task_folder(tiny_task_dir)
    negatives = bm25_negatives(task, count=2, skip=0)
    full_ranking = BM25Searcher(task, BM25Config(), show_progress=False).search(task.split_queries("train"), len(task.corpus))
    assert set(negatives) == set(task.qrels["train"])
    for qid, mined in negatives.items():
        ranked = sorted(full_ranking[qid], key=lambda d: (-full_ranking[qid][d], d))
        assert mined == [d for d in ranked if d not in task.qrels["train"][qid]][:2]
    config = load_baseline("contrastive", overrides={"hard_negatives": 2}).config
    dataset = pairs_dataset(task, config)
    assert dataset.column_names == ["anchor", "positive", "negative_1", "negative_2"] and len(dataset) == 30


def test_max_pairs_per_query_caps_each_querys_positives_with_a_seeded_choice():
    from harness.task import Document, Task

    corpus = {f"d{i}": Document("", f"document {i}") for i in range(6)}
    qrels = {"long": {f"d{i}": 1 for i in range(5)}, "short": {"d5": 1}, "graded": {"d0": 0, "d1": 2}}
    task = Task(name="toy", corpus=corpus, queries={q: q for q in qrels}, qrels={"train": qrels})
    config = load_baseline("contrastive", overrides={"max_pairs_per_query": 2}).config

    def pairs(seed):
        rows = pairs_dataset(task, config, seed=seed)
        return list(zip(rows["anchor"], rows["positive"]))

    kept = pairs(0)
    assert [a for a, _ in kept] == ["long", "long", "short", "graded"]  # at most 2 each; a zero grade is no positive
    assert {p for a, p in kept if a == "long"} < {f"document {i}" for i in range(5)}
    assert pairs(0) == kept and len({tuple(pairs(seed)) for seed in range(8)}) > 1  # seeded, and the seed matters
    assert len(pairs_dataset(task, load_baseline("contrastive").config)) == 5 + 1 + 1  # default: every pair
    with pytest.raises(HarnessError, match="max_pairs_per_query"):
        load_baseline("contrastive", overrides={"max_pairs_per_query": -1}).config.check(task)


def test_lora_saves_an_adapter_over_the_local_base_and_reloads_it(tiny_task_dir, tiny_bert_dir, tmp_path):
    result = train_and_score("lora", tiny_task_dir, tiny_bert_dir, tmp_path)
    info = result["train_info"]
    assert_trained_and_selected_on_dev(info)
    assert info["finetune"] == "lora" and info["lora_target_modules"] == ["query", "key", "value"]
    folder = Path(info["model_path"])
    adapter = json.loads((folder / "adapter_config.json").read_text())
    assert Path(adapter["base_model_name_or_path"]) == tiny_bert_dir and adapter["r"] == 16
    assert not (folder / "model.safetensors").exists()
    score = result["scores"]["test"][0]["ndcg_at_10"]
    assert reloaded_test_ndcg(str(folder), tiny_task_dir) == pytest.approx(score, abs=1e-5)


def test_heal_on_gold_labels_logs_every_level_and_reloads(tiny_task_dir, tiny_bert_dir, tmp_path):
    # by depth: every gold column is its own level (heal.toml's by-role weights merge identity levels; test_heal_ablations.py)
    result = train_and_score("heal", tiny_task_dir, tiny_bert_dir, tmp_path, label_source="gold", members_per_leaf=3,
                             weighting="by_depth")
    info = result["train_info"]
    assert_trained_and_selected_on_dev(info)
    levels = ["L0_level0", "L1_level1", "L2_level2", "L3_instance"]
    assert all(set(levels) <= set(entry) for entry in info["loss_log"])
    for entry in info["loss_log"]:
        assert entry["loss"] == pytest.approx(sum(entry[level] for level in levels), rel=1e-3)
    assert info["documents"] == 18 and info["queries"] == 30 and info["lambdas"] == [1.1892, 1.4142, 1.6818, 2.0]
    score = result["scores"]["test"][0]["ndcg_at_10"]
    assert reloaded_test_ndcg(info["model_path"], tiny_task_dir) == pytest.approx(score, abs=1e-5)


def test_heal_on_hnmfk_labels_with_fuzzy_positives_and_lora(tiny_task_dir, tiny_bert_dir, tmp_path):
    result = train_and_score("heal", tiny_task_dir, tiny_bert_dir, tmp_path, label_source="hnmfk", fuzzy=True,
                             finetune="lora", members_per_leaf=3, hnmfk=TINY_HNMFK)
    info = result["train_info"]
    assert_trained_and_selected_on_dev(info)
    assert info["label_source"] == "hnmfk" and info["hnmfk_root_k"] >= 2 and info["levels"][-1] == "instance"
    assert info["finetune"] == "lora" and (Path(info["model_path"]) / "adapter_config.json").is_file()
    assert all(entry["L0_hnmfk0"] > 0 for entry in info["loss_log"])


def test_queries_inherit_their_documents_hnmfk_path_and_memberships(tiny_task_dir, monkeypatch):
    """HNMFk's contract: one path per text (shorter where a branch stopped) and per-level memberships."""
    task = load_task_folder(tiny_task_dir)
    doc_ids = sorted(task.corpus)  # the order heal hands texts to HNMFk
    topics = ["access", "malware", "network"]

    def fake_path(doc_id: str) -> tuple[str, ...]:  # only the network topic splits further
        topic, subtopic, _ = doc_id.split("-")
        return ("2", "2.1" if subtopic == "sniff" else "2.0") if topic == "network" else (str(topics.index(topic)),)

    paths = [fake_path(d) for d in doc_ids]
    top = np.array([[0.8 if str(t) == p[0] else 0.1 for t in range(3)] for p in paths])
    fine = np.array([[0.9, 0.1] if p[1:] == ("2.0",) else [0.1, 0.9] if p[1:] else [0.5, 0.5] for p in paths])
    hierarchy = Hierarchy(paths, [["0", "1", "2"], ["2.0", "2.1"]], [top, fine], {"": 3, "2": 2}, {})
    monkeypatch.setattr(heal_method, "cached_hnmfk", lambda texts, config, cache_dir: hierarchy)
    table = label_table(task, load_baseline("heal", overrides={"fuzzy": True}).config)

    assert table.level_names == ["L0_hnmfk0", "L1_hnmfk1", "L2_instance"] and len(table.texts) == 18 + 30
    for instance in table.instances:
        document = table.paths[instance.document]
        assert instance.leaf == paths[instance.document] and document[2] == instance.document
        assert len(instance.queries) == sum(doc_ids[instance.document] in docs for docs in task.qrels["train"].values())
        for row in instance.queries:
            assert torch.equal(table.paths[row], document)
            assert torch.equal(table.memberships[0][row], table.memberships[0][instance.document])
    stopped = doc_ids.index("access-brute-0")
    assert table.paths[stopped, 1] == -1 and table.memberships[1][stopped].abs().sum() == 0
    assert table.memberships[2] is None


@pytest.mark.parametrize(
    "overrides, problem",
    [
        ({"label_source": "gold", "fuzzy": True}, "fuzzy = true needs label_source"),
        ({"label_source": "taxonomy"}, "label_source must be one of"),
        ({"members_per_leaf": 40}, "members_per_leaf"),
        ({"hnmfk": {"depth": 3}}, "not HNMFk settings"),
    ],
)
def test_bad_heal_settings_are_one_line_errors_before_training(tiny_task_dir, tmp_path, overrides, problem):
    task = load_task_folder(tiny_task_dir)
    baseline = load_baseline("heal", overrides={"model": str(tmp_path / "never-loaded"), **overrides})
    with pytest.raises(HarnessError, match=problem):
        HEAL().fit(task, baseline.config, FitContext(run_dir=tmp_path / "run", seed=0, device="cpu"))


def test_lora_targets_follow_the_attention_module_names():
    def encoder(*names: str) -> torch.nn.Module:
        return torch.nn.ModuleDict({"attention": torch.nn.ModuleDict({n: torch.nn.Linear(2, 2) for n in names})})

    assert lora_targets(encoder("query", "key", "value", "dense")) == ("query", "key", "value")
    assert lora_targets(encoder("q", "k", "v", "o")) == ("q", "k", "v")
    assert lora_targets(encoder("q", "k", "v"), requested=("q", "v")) == ("q", "v")
    with pytest.raises(HarnessError, match="lora_target_modules"):
        lora_targets(encoder("Wi", "Wo"))
    with pytest.raises(HarnessError, match="not linear layers"):
        lora_targets(encoder("q", "k", "v"), requested=("query",))


def test_compiled_encoding_matches_eager(tiny_bert_dir):
    """`compile = true` (inductor, frozen weights) gives the eager embeddings."""
    from torch._dynamo.utils import counters

    from harness.encoders import EncodeSettings, SentenceTransformerEncoder, load_sentence_transformer

    counters.clear()
    texts = ["port probe sweep host", "payload dropper", "the adversary may use email lure link attachment to"] * 3
    eager = SentenceTransformerEncoder(load_sentence_transformer(tiny_bert_dir, "cpu"), EncodeSettings(precision="fp32", show_progress=False, batch_size=4), "cpu")
    model = load_sentence_transformer(tiny_bert_dir, "cpu")
    compiled = SentenceTransformerEncoder(model, EncodeSettings(precision="fp32", show_progress=False, batch_size=4, compile=True), "cpu")
    assert getattr(model[0].model, "_harness_compiled", False)
    np.testing.assert_allclose(compiled.encode(texts, "document"), eager.encode(texts, "document"), atol=1e-5)
    assert counters["stats"]["unique_graphs"] >= 1  # inductor ran: not a silent eager fallback


@pytest.mark.parametrize(
    ("name", "cost", "reference", "slug"),
    [("bm25", 0, None, "lexical"), ("frozen", 0, None, "minilm"), ("contrastive", 200 * 32, None, "minilm"),
     ("heal", 200 * 64, "contrastive", "minilm"), ("llm-cl", 64 * 8, None, "smollm2"), ("lbr", 64 * 4 + 64 * 8, "llm-cl", "smollm2")],
)
def test_every_config_declares_its_cost_reference_and_model_slug(name, cost, reference, slug):
    baseline = load_baseline(name)
    assert (baseline.expected_cost, baseline.reference, baseline.model_slug) == (cost, reference, slug)


@pytest.mark.parametrize("name", ["contrastive", "lora", "heal", "llm-cl", "lbr"])
def test_trained_methods_reject_a_task_without_train_qrels_in_their_config_check(name, tiny_task_dir):
    task = load_task_folder(tiny_task_dir)
    without_train = dataclasses.replace(task, qrels={k: v for k, v in task.qrels.items() if k != "train"})
    with pytest.raises(HarnessError, match="no train qrels"):
        load_baseline(name).config.check(without_train)
