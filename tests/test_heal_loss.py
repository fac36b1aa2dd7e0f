"""HEAL loss and its batch sampler, on small hand-built cases."""

from __future__ import annotations

import math
from collections import Counter

import pytest
import torch

from harness.methods.heal_loss import HEALLoss, heal_loss, level_weights
from harness.methods.hierarchy_sampler import HierarchyBatchSampler, Instance


def supcon_reference(z: torch.Tensor, labels: list[int], tau: float) -> float:
    """Khosla et al.'s SupCon (self excluded from the denominator), written as plain loops."""
    z = torch.nn.functional.normalize(z, dim=1)
    n, total, anchors = len(labels), 0.0, 0
    for i in range(n):
        others = [a for a in range(n) if a != i]
        denominator = math.log(sum(math.exp(float(z[i] @ z[a]) / tau) for a in others))
        positives = [p for p in others if labels[p] == labels[i]]
        if positives:
            total += -sum(float(z[i] @ z[p]) / tau - denominator for p in positives) / len(positives)
            anchors += 1
    return total / n


def test_one_level_equals_supcon_reference_on_random_embeddings():
    torch.manual_seed(0)
    z = torch.randn(24, 16, dtype=torch.float64)
    labels = [i % 6 for i in range(24)]
    (term,) = heal_loss(z, torch.tensor(labels)[:, None], [1.0], tau=0.1)
    assert term.item() == pytest.approx(supcon_reference(z, labels, 0.1), abs=1e-6)


def test_gradients_are_finite_with_undefined_levels_and_lonely_anchors():
    torch.manual_seed(1)
    z = torch.randn(8, 4, requires_grad=True)
    paths = torch.tensor([[0, 0], [0, 0], [0, 1], [1, -1], [1, -1], [2, -1], [0, 1], [1, 2]])  # item 5 has no positive
    total = sum(heal_loss(z, paths, [1.0, 2.0], tau=0.05))
    total.backward()
    assert torch.isfinite(total) and torch.isfinite(z.grad).all() and z.grad.abs().sum() > 0


def test_anchors_without_positives_are_skipped_but_counted_in_the_batch():
    z = torch.eye(4, dtype=torch.float64)
    labels = [0, 0, 1, 2]
    (term,) = heal_loss(z, torch.tensor(labels)[:, None], [1.0], tau=1.0)
    # only anchors 0 and 1 have a positive; each sees similarity 0 to all three others
    assert term.item() == pytest.approx(2 * math.log(3) / 4, abs=1e-12)


def hierarchy_batch(seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """3 topics x 3 subtopics x 4 items: paths, embeddings encoding them, and random embeddings."""
    generator = torch.Generator().manual_seed(seed)
    paths = torch.tensor([[t, 3 * t + s] for t in range(3) for s in range(3) for _ in range(4)])
    basis = torch.eye(16, dtype=torch.float64)
    structured = basis[paths[:, 0]] + 0.6 * basis[3 + paths[:, 1]] + 0.02 * torch.randn(len(paths), 16, generator=generator, dtype=torch.float64)
    random = torch.randn(len(paths), 16, generator=generator, dtype=torch.float64)
    return paths, structured, random


def test_embeddings_that_encode_the_hierarchy_have_lower_loss_than_random_ones():
    paths, structured, random = hierarchy_batch(0)
    lambdas = level_weights("finer", 2)
    assert sum(heal_loss(structured, paths, lambdas, tau=0.1)) < sum(heal_loss(random, paths, lambdas, tau=0.1)) - 1.0


def test_label_positives_cross_parents_when_child_labels_repeat():
    paths, structured, _ = hierarchy_batch(1)
    local = torch.stack([paths[:, 0], paths[:, 1] % 3], dim=1)  # subtopic ids 0..2 reused under every topic
    prefix = heal_loss(structured, local, [1.0, 1.0], tau=0.1, positives="prefix")
    label = heal_loss(structured, local, [1.0, 1.0], tau=0.1, positives="label")
    unique = heal_loss(structured, paths, [1.0, 1.0], tau=0.1, positives="label")
    assert prefix[1].item() == pytest.approx(unique[1].item(), abs=1e-12)
    assert label[1].item() > prefix[1].item() + 1.0  # cross-topic "positives" sit far away


def test_one_hot_memberships_give_the_hard_loss_and_soft_ones_change_it():
    paths, structured, _ = hierarchy_batch(2)
    one_hot = [torch.nn.functional.one_hot(paths[:, level]).double() for level in range(2)]
    hard = heal_loss(structured, paths, [1.0, 1.0], tau=0.1)
    fuzzy = heal_loss(structured, paths, [1.0, 1.0], tau=0.1, memberships=one_hot)
    assert [t.item() for t in fuzzy] == pytest.approx([t.item() for t in hard], abs=1e-12)
    blurred = [0.7 * m + 0.3 / m.shape[1] for m in one_hot]
    assert heal_loss(structured, paths, [1.0, 1.0], tau=0.1, memberships=blurred)[1].item() != pytest.approx(hard[1].item(), abs=1e-6)


def test_level_weight_schedules():
    assert level_weights("finer", 4) == pytest.approx([2**0.25, 2**0.5, 2**0.75, 2.0])
    assert level_weights("uniform", 3) == [1.0, 1.0, 1.0]
    assert level_weights("coarser", 3, decay=0.5) == [1.0, 0.5, 0.25]
    with pytest.raises(ValueError, match="lambda schedule"):
        level_weights("steep", 3)


def sampler_instances() -> list[Instance]:
    """5 leaves with 1-4 documents, 0-6 queries each; rows: documents 0..n-1, then queries."""
    shape = {"a": [3, 0, 1], "b": [6], "c": [0, 0], "d": [2, 2, 2, 2], "e": [1]}
    n_docs = sum(len(docs) for docs in shape.values())
    instances, next_query, doc = [], n_docs, 0
    for leaf, query_counts in shape.items():
        for count in query_counts:
            instances.append(Instance(leaf=leaf, document=doc, queries=tuple(range(next_query, next_query + count))))
            next_query += count
            doc += 1
    return instances


def make_sampler(batch_size: int, members: int, seed: int = 0) -> HierarchyBatchSampler:
    instances = sampler_instances()
    n_rows = sum(1 + len(i.queries) for i in instances)
    return HierarchyBatchSampler(list(range(n_rows)), batch_size, seed=seed, instances=instances, members_per_leaf=members)


def batches_of(sampler: HierarchyBatchSampler, epochs: int) -> list[list[int]]:
    batches = []
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        batches += list(sampler)
    return batches


def test_sampler_puts_at_least_m_members_of_each_leaf_in_every_batch():
    instances = sampler_instances()
    leaf_of = {row: i.leaf for i in instances for row in (i.document, *i.queries)}
    leaf_size = Counter(leaf_of.values())
    sampler = make_sampler(batch_size=9, members=3)
    batches = batches_of(sampler, epochs=5)
    assert len(batches) == 5 * math.ceil(len(leaf_of) / 9)
    for batch in batches:
        assert len(batch) == len(set(batch)) <= 9
        for leaf, count in Counter(leaf_of[row] for row in batch).items():
            assert count >= min(3, leaf_size[leaf])


def test_sampler_puts_every_query_beside_its_document():
    instances = sampler_instances()
    document_of = {q: i.document for i in instances for q in i.queries}
    sampler = make_sampler(batch_size=8, members=2, seed=3)
    batches = batches_of(sampler, epochs=4)
    for batch in batches:
        assert all(document_of[row] in batch for row in batch if row in document_of)
    assert set().union(*batches) == set(range(sum(1 + len(i.queries) for i in instances)))


def test_sampler_rejects_leaf_chunks_that_cannot_fit_a_batch():
    with pytest.raises(ValueError, match="members_per_leaf"):
        make_sampler(batch_size=8, members=4)


def test_length_buckets_embed_like_one_pass(tiny_bert_dir):
    """Splitting a mixed-length batch into length buckets only removes padding: same embeddings."""
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(tiny_bert_dir), device="cpu").eval()
    texts = ["short"] * 5 + ["a much longer document text that goes on " * 6] * 3 + ["mid length query here"] * 4
    features = model.tokenize(texts)
    paths = torch.zeros(len(texts), 1, dtype=torch.long)
    one_pass = HEALLoss(model, paths, ["L0"], [1.0], length_buckets=1)
    bucketed = HEALLoss(model, paths, ["L0"], [1.0], length_buckets=3)
    with torch.no_grad():
        expected = one_pass.embed(dict(features))
        got = bucketed.embed(dict(features))
    assert got.shape == expected.shape
    assert torch.allclose(got, expected, atol=1e-5)
    assert not torch.allclose(got[0], got[5])  # rows kept their own order, not the sorted one
