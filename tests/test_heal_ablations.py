"""HEAL's ablation knobs (issue #17): weights by role, merged identity levels, one batch composition for every label source."""

from __future__ import annotations

import random
from dataclasses import replace

import numpy as np
import pytest
import torch

from harness.baselines import load_baseline
from harness.methods import heal as heal_method
from harness.methods.heal import HEALConfig, label_table, loss_levels, redundant_levels
from harness.methods.heal_loss import heal_loss, level_weights, role_weights
from harness.methods.hierarchy_sampler import HierarchyBatchSampler
from harness.methods.hnmfk import Hierarchy
from harness.task import load_task_folder

BY_ROLE = {"weighting": "by_role"}


def tiny_hierarchy(doc_ids: list[str]) -> Hierarchy:
    """Two HNMFk levels: topic, then subtopic (names as HNMFk gives them), soft memberships beside the argmax."""
    topics = sorted({d.split("-")[0] for d in doc_ids})
    paths = []
    for doc in doc_ids:
        topic, sub, _ = doc.split("-")
        t = topics.index(topic)
        paths.append((str(t), f"{t}.{int(sub in ('scan', 'loader', 'phish'))}"))
    top = np.array([[0.7 if str(t) == p[0] else 0.15 for t in range(3)] for p in paths])
    fine = np.array([[0.2, 0.8] if p[1].endswith(".1") else [0.8, 0.2] for p in paths])
    fine = np.concatenate([fine * (np.array([[str(t) == p[0]] for p in paths])) for t in range(3)], axis=1)
    nodes = [["0", "1", "2"], [f"{t}.{c}" for t in range(3) for c in range(2)]]
    return Hierarchy(paths, nodes, [top, fine], {"": 3, "0": 2, "1": 2, "2": 2}, {})


@pytest.fixture
def task(tiny_task_dir, monkeypatch):
    task = load_task_folder(tiny_task_dir)
    hierarchy = tiny_hierarchy(sorted(task.corpus))
    monkeypatch.setattr(heal_method, "cached_hnmfk", lambda texts, config, cache_dir: hierarchy)
    return task


def config(**overrides) -> HEALConfig:
    return HEALConfig(train_batch_size=12, members_per_leaf=2, **overrides)


@pytest.mark.parametrize("schedule", ["finer", "uniform", "coarser", "hmce"])
@pytest.mark.parametrize("n_cluster_levels", [1, 2, 3, 5])
def test_role_weights_give_the_instance_its_weight_and_the_label_levels_the_set_total(schedule, n_cluster_levels):
    weights = role_weights(schedule, n_cluster_levels, cluster_weight=0.3, instance_weight=1.0)
    assert len(weights) == n_cluster_levels + 1 and weights[-1] == 1.0
    assert sum(weights[:-1]) == pytest.approx(0.3, abs=1e-12)


def test_gold_and_hnmfk_get_the_same_weights_although_gold_has_one_more_label_column(task):
    """The tiny task's gold paths are topic -> subtopic -> document id; HNMFk's are topic -> subtopic."""
    gold = loss_levels(label_table(task, config(label_source="gold", **BY_ROLE)), config(**BY_ROLE))
    hnmfk = loss_levels(label_table(task, config(**BY_ROLE)), config(**BY_ROLE))
    expected = [0.5 * 2**0.5 / (2**0.5 + 2), 0.5 * 2 / (2**0.5 + 2), 1.0]
    assert gold[2] == pytest.approx(expected) and hnmfk[2] == pytest.approx(expected)
    assert gold[1] == ["L0_level0", "L1_level1", "L2_instance"]


def test_hmce_schedule_weights_the_finest_label_level_2_and_the_next_root_2():
    assert level_weights("hmce", 3) == pytest.approx([2 ** (1 / 3), 2**0.5, 2.0])


def test_a_level_with_one_label_per_document_or_a_repeated_grouping_is_merged_away():
    codes = np.array([[0, 0, 0, 0], [0, 0, 0, 1], [0, 1, 1, 2], [1, 2, 2, -1]])
    # level 2 groups exactly as level 1; level 3 gives every labelled document its own label
    assert redundant_levels(codes, "prefix") == [2, 3]
    assert redundant_levels(np.array([[0, 5], [0, 5], [1, 5]]), "label") == []  # the same label under two parents: a coarser grouping
    assert redundant_levels(np.array([[0, 5], [0, 5], [1, 5]]), "prefix") == [1]


def test_the_gold_document_id_level_is_merged_into_the_instance_level(task):
    table = label_table(task, config(label_source="gold", **BY_ROLE))
    assert table.level_names == ["L0_level0", "L1_level1", "L2_instance"]
    assert table.info["merged_levels"] == ["level2"]
    assert {len(i.leaf) for i in table.instances} == {2} and table.info["leaves"] == 6
    by_depth = label_table(task, config(label_source="gold"))
    assert by_depth.level_names == ["L0_level0", "L1_level1", "L2_level2", "L3_instance"]


def composition(task, cfg: HEALConfig, epochs: int = 3) -> list[tuple[int, int]]:
    table = label_table(task, cfg)
    n_docs = table.info["documents"]
    sampler = HierarchyBatchSampler(list(range(len(table.texts))), cfg.train_batch_size, seed=0, instances=table.instances,
                                    members_per_leaf=cfg.members_per_leaf, batch_documents=cfg.documents_per_batch())
    shape = []
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        for batch in sampler:
            documents = [row for row in batch if row < n_docs]
            owner = {q: i.document for i in table.instances for q in i.queries}
            assert len(set(batch)) == len(batch) and all(owner[row] in batch for row in batch if row >= n_docs)
            shape.append((len(documents), len(batch) - len(documents)))
    return shape


def test_heal_and_heal_gold_train_on_the_same_mix_of_documents_and_queries(task):
    """6 documents a batch, each with one of its queries (3 of the 18 tiny documents have none)."""
    shapes = {source: composition(task, config(label_source=source, **BY_ROLE), epochs=40) for source in ("hnmfk", "gold", "none")}
    for shape in shapes.values():
        assert {documents for documents, _ in shape} == {6} and min(q for _, q in shape) >= 3
    means = [sum(q for _, q in shape) / len(shape) for shape in shapes.values()]
    assert max(means) - min(means) < 0.1


def test_fixed_composition_visits_every_document_query_pair_once_a_pass(task):
    cfg = config(**BY_ROLE)
    table = label_table(task, cfg)
    sampler = HierarchyBatchSampler(list(range(len(table.texts))), 12, seed=1, instances=table.instances,
                                    members_per_leaf=2, batch_documents=6)
    visits = [v for leaf in sampler.leaves.values() for chunk in sampler.leaf_visits(leaf, random.Random(0)) for v in chunk]
    assert sorted(row for v in visits for row in v[1:]) == list(range(18, 48))  # each train query once
    assert all(len(v) <= 2 for v in visits) and {v[0] for v in visits} == set(range(18))


def test_heal_instance_has_only_the_instance_term(task):
    for name in ("heal-instance", "heal-cw0"):
        cfg = replace(load_baseline(name).config, train_batch_size=12, members_per_leaf=2)
        paths, names, lambdas, memberships = loss_levels(label_table(task, cfg), cfg)
        assert names[-1].endswith("_instance") and len(names) == 1 and lambdas == [1.0] and paths.shape[1] == 1
        assert memberships is None


def test_fuzzy_memberships_follow_the_kept_levels_and_are_soft(task):
    cfg = config(fuzzy=True, **BY_ROLE)
    paths, names, lambdas, memberships = loss_levels(label_table(task, cfg), cfg)
    assert len(memberships) == len(names) == 3 and memberships[-1] is None
    assert memberships[0].max(dim=1).values.max() < 1.0  # soft, not one-hot
    z = torch.randn(len(paths), 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    soft, hard = heal_loss(z, paths, lambdas, memberships=memberships), heal_loss(z, paths, lambdas)
    assert soft[0].item() != pytest.approx(hard[0].item(), abs=1e-6) and soft[2].item() == hard[2].item()


# The per-level terms of the committed code (before issue #17) for the tiny task's gold labels under the
# default config, on float64 embeddings torch.randn(48, 8) from seed 0: the defaults must not move them.
BEFORE = ["0x1.2f5b48fd2adddp+3", "0x1.63ecf08c2fc39p+3", "0x1.7f1b0d6aa1194p+3", "0x1.c7978cd533923p+3"]


def test_the_default_config_gives_the_loss_it_gave_before(task):
    cfg = HEALConfig(label_source="gold")
    paths, names, lambdas, memberships = loss_levels(label_table(task, cfg), cfg)
    assert lambdas == level_weights("finer", 4) and names[-1] == "L3_instance"
    z = torch.randn(len(paths), 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert [t.item().hex() for t in heal_loss(z, paths, lambdas, cfg.tau, cfg.positives, memberships)] == BEFORE


@pytest.mark.parametrize("name, stored_hash", [("heal-gold", "7fe9b9e0"), ("heal-uniform", "078ac609"), ("heal-coarse", "3ca2b5b9")])
def test_the_stored_by_depth_results_are_the_baselines_with_weighting_back_at_its_default(name, stored_hash):
    baseline = load_baseline(name)
    assert replace(baseline, config=replace(baseline.config, weighting="by_depth")).config_hash == stored_hash


def test_a_by_role_run_trains_and_logs_its_weights_and_composition(tiny_task_dir, tiny_bert_dir, tmp_path):
    import json

    from harness.runner import RunSettings, run_one

    overrides = {"model": str(tiny_bert_dir), "max_steps": 3, "train_batch_size": 12, "eval_steps": 3, "logging_steps": 1,
                 "precision": "fp32", "max_seq_length": 48, "encode_batch_size": 16, "members_per_leaf": 2}
    baseline = load_baseline("heal-gold", overrides=overrides)
    torch.set_num_threads(1)
    path = run_one(load_task_folder(tiny_task_dir), baseline, 0, RunSettings(results_dir=tmp_path / "results", show_progress=False))
    info = json.loads(path.read_text())["train_info"]
    assert info["weighting"] == "by_role" and info["batch_documents"] == 6 and info["merged_levels"] == ["level2"]
    assert info["loss_levels"] == ["L0_level0", "L1_level1", "L2_instance"] and info["lambdas"][-1] == 1.0
    assert sum(info["lambdas"][:-1]) == pytest.approx(0.5, abs=1e-3)
    assert all(set(info["loss_levels"]) <= set(entry) for entry in info["loss_log"])
