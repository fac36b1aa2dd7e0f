"""Hierarchical classification metrics: hand-computed toy cases, embeddings that encode the hierarchy, random ones."""

from __future__ import annotations

import numpy as np
import pytest

from harness.metrics.hierarchy import (
    HierarchySettings,
    held_out_depths,
    hierarchical_prf,
    hierarchy_scores,
    path_consistency,
    query_label_paths,
)
from harness.task import Document, Task, load_task_folder

TOPICS = ("net", "mal", "acc")
SUBS = ("x", "y")


def hierarchy_task(docs_per_leaf: int = 4, queries_per_doc: int = 2) -> Task:
    """3 topics x 2 subtopics x `docs_per_leaf` documents, each with its own test queries."""
    corpus, queries, qrels = {}, {}, {}
    for topic in TOPICS:
        for sub in SUBS:
            for i in range(docs_per_leaf):
                doc_id = f"{topic}-{sub}-{i}"
                corpus[doc_id] = Document(title="", text=doc_id, labels=(topic, f"{topic}.{sub}"))
                for j in range(queries_per_doc):
                    queries[f"q-{doc_id}-{j}"] = f"about {doc_id}"
                    qrels[f"q-{doc_id}-{j}"] = {doc_id: 1}
    return Task(name="toy", corpus=corpus, queries=queries, qrels={"test": qrels})


def hierarchy_vectors(paths: list[tuple[str, ...]]) -> np.ndarray:
    """One block per level: a topic one-hot weighted 3, a subtopic one-hot weighted 1, L2-normalised."""
    topics = sorted({p[0] for p in paths})
    subs = sorted({p[1] for p in paths})
    vectors = np.zeros((len(paths), len(topics) + len(subs)), dtype=np.float32)
    for row, path in enumerate(paths):
        vectors[row, topics.index(path[0])] = 3.0
        vectors[row, len(topics) + subs.index(path[1])] = 1.0
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def random_vectors(n: int, seed: int, dim: int = 16) -> np.ndarray:
    vectors = np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def embed(task: Task, encode) -> tuple[list[str], np.ndarray, list[str], np.ndarray]:
    doc_ids = list(task.corpus)
    query_ids = list(task.qrels["test"])
    gold = query_label_paths(task, "test")
    return doc_ids, encode([task.corpus[d].labels for d in doc_ids]), query_ids, encode([gold[q] for q in query_ids])


def test_hierarchical_prf_counts_every_ancestor_of_each_predicted_label():
    truths = [("A", "A1"), ("A", "A2")]
    predicted = [
        [("A",), ("B", "B1")],  # augmented {A, B, B/B1} against {A, A/A1}: 1 shared of 3 predicted, 2 true
        [("A",), ("A", "A2")],  # augmented {A, A/A2} against {A, A/A2}: 2 of 2
    ]
    precision, recall, f1 = hierarchical_prf(truths, predicted)
    assert precision == pytest.approx(3 / 5)
    assert recall == pytest.approx(3 / 4)
    assert f1 == pytest.approx(2 / 3)


def test_path_consistency_requires_each_level_to_extend_the_one_above():
    predicted = [
        [("A",), ("A", "A1")],
        [("A",), ("B", "B1")],
        [("B",), ("B", "B1"), ("B", "B1", "x")],
    ]
    assert path_consistency(predicted) == pytest.approx(2 / 3)


def test_held_out_depths_stop_at_the_deepest_shared_label_and_keep_unique_items_for_training():
    paths = [("A", "A1")] * 3 + [("A", "A2"), ("B", "B1"), ("B", "B2")]
    depths = held_out_depths(paths, test_fraction=0.3, seed=0)
    assert sorted(depths[:3].tolist()) == [0, 0, 2]  # A/A1 is shared by three: one held out down to level 2
    assert depths[3] == 0  # the only item keyed at A (its A2 is unique) stays for training
    assert sorted(depths[4:].tolist()) == [0, 1]  # B1 and B2 are unique, B is shared: one held out at level 1
    assert depths.tolist() == held_out_depths(paths, test_fraction=0.3, seed=0).tolist()


def test_query_label_is_the_path_of_the_highest_graded_labelled_relevant_document():
    corpus = {
        "plain": Document("", "no labels"),
        "low": Document("", "low", ("A", "A1")),
        "high": Document("", "high", ("B", "B1")),
        "tie": Document("", "tie", ("C", "C1")),
    }
    qrels = {"test": {
        "q1": {"plain": 3, "low": 1, "high": 2},
        "q2": {"tie": 1, "low": 1},
        "q3": {"plain": 1},
        "q4": {"high": 0},
    }}
    task = Task(name="t", corpus=corpus, queries={q: q for q in qrels["test"]}, qrels=qrels)
    assert query_label_paths(task, "test") == {"q1": ("B", "B1"), "q2": ("C", "C1")}


def test_embeddings_that_encode_the_hierarchy_score_one_everywhere():
    task = hierarchy_task()
    scores = hierarchy_scores(task, "test", *embed(task, hierarchy_vectors))
    measures = [f"l{level}_{m}_{name}" for m in ("doc", "query") for level in (1, 2) for name in ("accuracy", "macro_f1")]
    measures += [f"path_{m}_{name}" for m in ("doc", "query") for name in ("precision", "recall", "f1", "consistency")]
    measures += ["l1_doc_v_measure", "l2_doc_v_measure"]
    assert scores == {f"hier_{measure}": pytest.approx(1.0) for measure in measures}


def test_random_embeddings_score_well_below_perfect():
    task = hierarchy_task()
    scores = hierarchy_scores(task, "test", *embed(task, lambda paths: random_vectors(len(paths), seed=1)))
    assert scores["hier_l2_doc_accuracy"] < 0.5
    assert scores["hier_l2_query_accuracy"] < 0.5
    assert scores["hier_path_query_f1"] < 0.6
    assert scores["hier_l1_doc_v_measure"] < 0.5


def test_unlabelled_documents_are_skipped():
    task = hierarchy_task()
    doc_ids, doc_vectors, query_ids, query_vectors = embed(task, hierarchy_vectors)
    extra = {f"extra-{i}": Document("", f"unlabelled {i}") for i in range(5)}
    with_extra = Task(name="toy", corpus={**task.corpus, **extra}, queries=task.queries, qrels=task.qrels)
    noisy = np.vstack([doc_vectors, random_vectors(5, seed=2, dim=doc_vectors.shape[1])])
    assert hierarchy_scores(with_extra, "test", doc_ids + list(extra), noisy, query_ids, query_vectors) == hierarchy_scores(
        task, "test", doc_ids, doc_vectors, query_ids, query_vectors
    )


def test_a_task_without_labels_has_no_hierarchy_scores():
    corpus = {"d1": Document("", "one"), "d2": Document("", "two")}
    task = Task(name="t", corpus=corpus, queries={"q": "one"}, qrels={"test": {"q": {"d1": 1}}})
    assert hierarchy_scores(task, "test", ["d1", "d2"], random_vectors(2, 0), ["q"], random_vectors(1, 1)) == {}


def test_levels_where_every_document_label_is_unique_get_no_document_scores(tiny_task_dir):
    task = load_task_folder(tiny_task_dir)  # labels: topic, subtopic, document id
    doc_ids = list(task.corpus)
    query_ids = list(task.qrels["train"])
    scores = hierarchy_scores(task, "train", doc_ids, random_vectors(len(doc_ids), 0), query_ids, random_vectors(len(query_ids), 1))
    assert {"hier_l2_doc_accuracy", "hier_l2_doc_v_measure", "hier_l3_query_accuracy"} <= set(scores)
    assert not {"hier_l3_doc_accuracy", "hier_l3_doc_macro_f1", "hier_l3_doc_v_measure"} & set(scores)


def test_the_same_seed_gives_identical_scores():
    task = hierarchy_task()
    inputs = embed(task, lambda paths: random_vectors(len(paths), seed=3))
    settings = HierarchySettings(test_fraction=0.5)
    assert hierarchy_scores(task, "test", *inputs, seed=4, settings=settings) == hierarchy_scores(task, "test", *inputs, seed=4, settings=settings)
