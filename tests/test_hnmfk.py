"""HNMFk: recovers a planted topic hierarchy, is deterministic, caches by input and parameters, stops where told."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from harness.methods import hnmfk
from harness.errors import HarnessError
from harness.methods.hnmfk import HNMFkConfig, cache_key, cached_hnmfk, fit_hnmfk, fit_hnmfk_matrix

QUICK = HNMFkConfig(k_max=4, n_perturbations=4, max_depth=1)


def planted_corpus(docs_per_leaf=(30,) * 9, n_subtopics=3, seed=0) -> tuple[list[str], list[tuple[int, int]]]:
    """Documents mixing topic words, subtopic words and shared filler; leaves listed topic-major."""
    rng = np.random.default_rng(seed)
    filler = [f"common{i}" for i in range(40)]
    texts, truth = [], []
    for leaf, count in enumerate(docs_per_leaf):
        topic, sub = divmod(leaf, n_subtopics)
        for _ in range(count):
            words = [*rng.choice([f"topic{topic}word{i}" for i in range(25)], 8),
                     *rng.choice([f"topic{topic}sub{sub}word{i}" for i in range(15)], 5),
                     *rng.choice(filler, 6)]
            rng.shuffle(words)
            texts.append(" ".join(words))
            truth.append((topic, sub))
    return texts, truth


@pytest.fixture(scope="module")
def planted():
    texts, truth = planted_corpus()
    return truth, fit_hnmfk(texts, HNMFkConfig())


def test_recovers_a_planted_three_by_three_hierarchy(planted):
    truth, hierarchy = planted
    assert hierarchy.chosen_k[""] == 3
    assert hierarchy.n_levels == 2
    assert adjusted_rand_score([t for t, _ in truth], hierarchy.level_labels(0)) >= 0.95
    assert adjusted_rand_score([f"{t}.{s}" for t, s in truth], hierarchy.level_labels(1)) >= 0.95


def test_paths_name_nodes_root_to_leaf(planted):
    _, hierarchy = planted
    assert {path[0] for path in hierarchy.paths} == {"0", "1", "2"}
    assert all(len(path) == 2 and path[1].startswith(path[0] + ".") for path in hierarchy.paths)
    assert hierarchy.level_nodes[0] == ["0", "1", "2"]
    assert hierarchy.level_nodes[1] == [f"{t}.{s}" for t in range(3) for s in range(3)]


def test_soft_memberships_sum_to_one_and_peak_at_the_hard_label(planted):
    _, hierarchy = planted
    for level, (nodes, soft) in enumerate(zip(hierarchy.level_nodes, hierarchy.memberships)):
        assert soft.shape == (len(hierarchy.paths), len(nodes))
        np.testing.assert_allclose(soft.sum(axis=1), 1.0)
        assert [nodes[i] for i in soft.argmax(axis=1)] == hierarchy.level_labels(level)


def test_stability_is_recorded_for_every_candidate_rank(planted):
    _, hierarchy = planted
    assert sorted(hierarchy.stability[""]) == list(range(2, 9))
    on_topics, on_memberships = hierarchy.stability[""][3]
    assert on_topics >= 0.8 and on_memberships >= 0.8


def test_same_seed_gives_the_same_hierarchy():
    texts, _ = planted_corpus(docs_per_leaf=(10,) * 9)
    first, second = fit_hnmfk(texts, QUICK), fit_hnmfk(texts, QUICK)
    assert first.paths == second.paths
    assert first.stability == second.stability
    np.testing.assert_array_equal(first.memberships[0], second.memberships[0])


def test_structureless_documents_stay_one_leaf():
    rng = np.random.default_rng(1)
    vocabulary = [f"word{i}" for i in range(200)]
    texts = [" ".join(rng.choice(vocabulary, 20)) for _ in range(120)]
    hierarchy = fit_hnmfk(texts, HNMFkConfig(k_max=4, n_perturbations=6))
    assert hierarchy.chosen_k == {"": 1}
    assert hierarchy.paths == [()] * 120 and hierarchy.n_levels == 0


def test_depth_limit_stops_the_recursion():
    texts, truth = planted_corpus()
    hierarchy = fit_hnmfk(texts, HNMFkConfig(k_max=4, n_perturbations=6, max_depth=1))
    assert list(hierarchy.chosen_k) == [""]
    assert hierarchy.n_levels == 1 and {len(p) for p in hierarchy.paths} == {1}


def test_clusters_below_min_size_become_leaves_carried_down_a_level():
    # topic 0 has 3 x 30 documents, topics 1 and 2 have 3 x 15: only topic 0 is big enough to split
    texts, truth = planted_corpus(docs_per_leaf=(30, 30, 30, 15, 15, 15, 15, 15, 15))
    hierarchy = fit_hnmfk(texts, HNMFkConfig(k_max=4, n_perturbations=6, min_cluster_size=46))
    big = hierarchy.paths[0][0]
    assert set(hierarchy.chosen_k) == {"", big}
    assert {len(p) for p, (t, _) in zip(hierarchy.paths, truth) if t != 0} == {1}
    small = sorted({p[0] for p, (t, _) in zip(hierarchy.paths, truth) if t != 0})
    assert len(small) == 2
    children = [f"{big}.{i}" for i in range(hierarchy.chosen_k[big])]
    assert hierarchy.level_nodes[1] == [c for top in hierarchy.level_nodes[0] for c in (children if top == big else [top])]
    column = hierarchy.level_nodes[1].index(small[0])
    carried = [d for d, p in enumerate(hierarchy.paths) if p == (small[0],)]
    np.testing.assert_array_equal(hierarchy.memberships[1][carried, column], 1.0)
    assert hierarchy.level_labels(1)[carried[0]] == small[0]


def test_corpus_below_min_size_is_not_split():
    texts, _ = planted_corpus(docs_per_leaf=(2,) * 9)
    hierarchy = fit_hnmfk(texts, HNMFkConfig(min_cluster_size=19))
    assert hierarchy.chosen_k == {} and hierarchy.n_levels == 0
    with pytest.raises(ValueError):
        hierarchy.level_labels(0)


def test_cache_returns_the_identical_hierarchy_without_refitting(tmp_path, monkeypatch):
    texts, _ = planted_corpus(docs_per_leaf=(10,) * 9)
    fitted = cached_hnmfk(texts, QUICK, tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == [f"hnmfk-{cache_key(texts, QUICK)}.npz"]
    monkeypatch.setattr(hnmfk, "fit_hnmfk", lambda *_: pytest.fail("refitted despite a cached file"))
    loaded = cached_hnmfk(texts, QUICK, tmp_path)
    assert loaded.paths == fitted.paths
    assert loaded.level_nodes == fitted.level_nodes
    assert loaded.chosen_k == fitted.chosen_k
    assert loaded.stability == fitted.stability
    for ours, theirs in zip(loaded.memberships, fitted.memberships):
        np.testing.assert_array_equal(ours, theirs)


def test_cache_key_changes_with_any_parameter_or_text():
    texts, _ = planted_corpus(docs_per_leaf=(2,) * 9)
    base = cache_key(texts, QUICK)
    assert cache_key(texts, HNMFkConfig(k_max=4, n_perturbations=4, max_depth=1)) == base
    assert cache_key(texts, HNMFkConfig(k_max=4, n_perturbations=4, max_depth=1, seed=1)) != base
    assert cache_key(texts, HNMFkConfig(k_max=4, n_perturbations=4, max_depth=1, noise=0.1)) != base
    assert cache_key(texts[:-1] + [texts[-1] + " extra"], QUICK) != base
    assert cache_key(texts[1:] + texts[:1], QUICK) != base


def test_changed_parameter_misses_the_cache(tmp_path):
    texts, _ = planted_corpus(docs_per_leaf=(10,) * 9)
    cached_hnmfk(texts, QUICK, tmp_path)
    cached_hnmfk(texts, HNMFkConfig(k_max=4, n_perturbations=4, max_depth=1, seed=3), tmp_path)
    assert len(list(tmp_path.glob("hnmfk-*.npz"))) == 2


def test_damaged_cache_file_is_rebuilt(tmp_path):
    texts, _ = planted_corpus(docs_per_leaf=(10,) * 9)
    path = tmp_path / f"hnmfk-{cache_key(texts, QUICK)}.npz"
    path.write_bytes(b"not a zip file")
    hierarchy = cached_hnmfk(texts, QUICK, tmp_path)
    assert hierarchy.chosen_k[""] == 3
    assert path.read_bytes()[:2] == b"PK"


def test_matrix_entry_point_splits_a_block_matrix_into_its_blocks():
    rng = np.random.default_rng(0)
    blocks = np.kron(np.eye(3), np.ones((20, 10)))  # 60 documents, 3 disjoint vocabularies
    matrix = blocks * rng.uniform(0.5, 1.5, blocks.shape)
    hierarchy = fit_hnmfk_matrix(matrix, HNMFkConfig(k_max=5, n_perturbations=6, max_depth=1))
    assert hierarchy.chosen_k == {"": 3}
    assert adjusted_rand_score(np.repeat([0, 1, 2], 20), hierarchy.level_labels(0)) == 1.0


def test_negative_matrix_is_rejected():
    with pytest.raises(HarnessError, match="non-negative"):
        fit_hnmfk_matrix(np.array([[1.0, -1.0], [0.5, 0.5]]), QUICK)


def test_texts_without_usable_words_are_rejected():
    with pytest.raises(HarnessError, match="TF-IDF"):
        fit_hnmfk(["the and of", "a the of", "and a the"], QUICK)


@pytest.mark.parametrize("fields", [{"k_min": 1}, {"k_min": 5, "k_max": 4}, {"n_perturbations": 1}, {"noise": 1.0}, {"init": "nndsvd"}])
def test_impossible_settings_are_rejected(fields):
    with pytest.raises(HarnessError):
        HNMFkConfig(**fields)
