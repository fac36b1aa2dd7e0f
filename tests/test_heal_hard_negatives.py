"""Hard negatives for `heal` (issue #16): mined documents join their query's batch as document rows."""

from __future__ import annotations

from dataclasses import replace

import pytest

from harness.baselines import load_baseline
from harness.config_fields import hashed_fields
from harness.errors import HarnessError
from harness.methods.base import FitContext
from harness.methods.heal import HEAL, HEALConfig, label_table
from harness.methods.hierarchy_sampler import HierarchyBatchSampler
from tests import test_heal_ablations

task = test_heal_ablations.task  # the fixture: the tiny task with a stubbed HNMFk hierarchy


def config(**overrides) -> HEALConfig:
    return HEALConfig(train_batch_size=12, members_per_leaf=2, weighting="by_role", **overrides)


def sampler(table, negatives=None, seed=0):
    return HierarchyBatchSampler(list(range(len(table.texts))), 12, seed=seed, instances=table.instances,
                                 members_per_leaf=2, batch_documents=6, negatives=negatives)


def batches(sampler, epochs=5):
    out = []
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        out += list(sampler)
    return out


def every_query_gets(table, n_docs, offset):
    """query row -> one document row that is not its own (its document's row + offset, wrapped)."""
    owner = {q: i.document for i in table.instances for q in i.queries}
    return {q: ((owner[q] + offset) % n_docs,) for q in owner}


def test_each_query_meets_its_mined_documents_in_its_batch(task):
    table = label_table(task, config())
    n_docs = table.info["documents"]
    negatives = every_query_gets(table, n_docs, 7)
    owner = {q: i.document for i in table.instances for q in i.queries}
    seen_queries = set()
    for batch in batches(sampler(table, negatives)):
        assert len(batch) == len(set(batch))  # a row never repeats within a batch
        queries = [row for row in batch if row >= n_docs]
        seen_queries.update(queries)
        for query in queries:
            assert owner[query] in batch and set(negatives[query]) <= set(batch)
        assert len(batch) <= 6 + 6 * 1 * 2  # D documents, r = 1 query each, n = 1 negative each
    assert seen_queries == set(owner)


def test_without_negatives_the_batches_are_exactly_the_old_ones(task):
    table = label_table(task, config())
    assert batches(sampler(table, {})) == batches(sampler(table, None))
    with_negatives = batches(sampler(table, every_query_gets(table, table.info["documents"], 7)))
    assert with_negatives != batches(sampler(table, None))


def test_hard_negatives_need_the_fixed_batch_composition(task):
    with pytest.raises(HarnessError, match="hard_negatives needs weighting"):
        HEALConfig(hard_negatives=1, hard_negative_miner="dense").check(task)
    with pytest.raises(HarnessError, match="hard_negatives >= 1"):
        config(hard_negative_miner="dense").check(task)
    table = label_table(task, config())
    with pytest.raises(ValueError, match="batch_documents > 0"):
        HierarchyBatchSampler(list(range(len(table.texts))), 12, instances=table.instances, members_per_leaf=2,
                              negatives={18: (0,)})


def test_the_miner_fields_leave_every_heal_hash_alone_until_set():
    heal = load_baseline("heal")
    assert "hard_negatives" in heal.config_dict and not any(key.startswith("hard_negative") for key in hashed_fields(heal.config))
    assert load_baseline("heal-hn").config_hash != heal.config_hash
    assert replace(heal, config=replace(heal.config, hard_negatives=1)).config_hash != heal.config_hash


@pytest.mark.parametrize("miner", ["bm25", "dense"])
def test_a_heal_run_mines_before_training_and_reports_how_many_queries_got_one(task, tiny_bert_dir, tmp_path, miner):
    cfg = config(model=str(tiny_bert_dir), label_source="gold", precision="fp32", max_steps=2, eval_steps=0, max_seq_length=48,
                 hard_negatives=1, hard_negative_miner=miner, hard_negative_skip=1)
    fitted = HEAL().fit(task, cfg, FitContext(tmp_path, seed=0, device="cpu", show_progress=False))
    info = fitted.train_info
    assert info["steps"] == 2 and info["train_queries"] == 30
    assert 0 < info["hard_negative_queries"] <= 30
