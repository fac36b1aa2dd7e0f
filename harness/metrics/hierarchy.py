"""Hierarchical classification and clustering of embeddings against the task's curated label paths.

Only `task.corpus[d].labels` (root -> leaf, depth may vary) is used; unlabelled documents are
skipped and a task without any label gives `{}`. A label at level l is the path prefix of length l,
so the same leaf name under two parents is two labels. Levels count from 1 (the root level).

Names (`l` = level, `m` = `doc` or `query`):

- `hier_l{l}_{m}_accuracy`, `hier_l{l}_{m}_macro_f1`: a linear probe (LogisticRegression) fitted on
  the probe's training part at level l, scored on the held-out part (macro-F1 over the labels of
  the held-out truth and predictions, as scikit-learn and mteb compute it).
- `hier_path_{m}_precision`, `hier_path_{m}_recall`, `hier_path_{m}_f1`: hierarchical P/R/F1 of
  Kiritchenko et al. (2005), micro-averaged: the predicted path is the per-level predictions, and
  both it and the true path are augmented with every ancestor (prefix) before counting overlap.
- `hier_path_{m}_consistency`: share of held-out items with at least two predicted levels whose
  prediction at every level is a child of the prediction one level up.
- `hier_l{l}_doc_v_measure`: V-measure of k-means on the document embeddings with k = the number
  of labels at level l, as mteb's hierarchical clustering scores each level. It is not corrected
  for chance: with many small labels (cyber's level 2, 202 labels over 637 documents) random
  embeddings already score about 0.7, so compare it between methods, not against 0.

Choices where the literature leaves room (knobs in `HierarchySettings`):

- One fixed split per modality, shared by all levels so each held-out item has a whole predicted
  path. It is stratified on each item's deepest label that at least two items share; items whose
  labels are all unique go to the training part only. An item is held out at the levels down to
  that label and no deeper, because below it its label occurs nowhere in training and no probe
  could predict it. Of each group of n items with the same deepest shared label, `round(n * test_fraction)`
  are held out, at least 1 and at most n - 1, drawn with `seed`.
- Query embeddings are labelled with the path of their gold document: the relevant (score > 0)
  labelled document with the highest grade, the first in qrels order on ties. Queries are split
  and probed among themselves, like documents.
- Probes stop after `max_iter` lbfgs iterations (mteb's default 100) so a cyber-sized task stays
  within seconds; the convergence warning that cap raises is silenced on purpose.
- A level with a single label, or where every label is unique, gets no V-measure: k-means with one
  cluster, or with one cluster per item, scores 1 whatever the embeddings.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from sklearn.cluster import KMeans
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score, v_measure_score

from harness.task import Task

LabelPath = tuple[str, ...]


@dataclass(frozen=True)
class HierarchySettings:
    test_fraction: float = 0.3  # share of each shared label's items held out for the probes
    max_iter: int = 100  # lbfgs iterations per probe (mteb's LogisticRegression default)
    C: float = 1.0  # inverse L2 strength of the probes (scikit-learn's and mteb's default)
    kmeans_n_init: int = 3  # k-means restarts per level; the best inertia is kept


def hierarchy_scores(
    task: Task,
    split: str,
    doc_ids: list[str],
    doc_vectors: np.ndarray,
    query_ids: list[str],
    query_vectors: np.ndarray,
    seed: int = 0,
    settings: HierarchySettings = HierarchySettings(),
) -> dict[str, float]:
    """Probe and clustering scores for the labelled documents and the labelled queries of `split`."""
    doc_paths = [task.corpus[d].labels for d in doc_ids]
    doc_rows = [i for i, path in enumerate(doc_paths) if path]
    if not doc_rows:
        return {}
    doc_vectors = np.asarray(doc_vectors, dtype=np.float32)
    labelled_docs = [doc_paths[i] for i in doc_rows]
    scores = probe_scores(doc_vectors[doc_rows], labelled_docs, "doc", seed, settings)
    scores.update(clustering_scores(doc_vectors[doc_rows], labelled_docs, seed, settings))
    gold = query_label_paths(task, split)
    query_rows = [i for i, qid in enumerate(query_ids) if qid in gold]
    if query_rows:
        query_paths = [gold[query_ids[i]] for i in query_rows]
        scores.update(probe_scores(np.asarray(query_vectors, dtype=np.float32)[query_rows], query_paths, "query", seed, settings))
    return scores


def query_label_paths(task: Task, split: str) -> dict[str, LabelPath]:
    """Query id -> label path of its gold document (highest grade, first in qrels order on ties)."""
    paths = {}
    for qid, judged in task.qrels.get(split, {}).items():
        labelled = [(rel, d) for d, rel in judged.items() if rel > 0 and task.corpus[d].labels]
        if labelled:
            best = max(rel for rel, _ in labelled)
            paths[qid] = task.corpus[next(d for rel, d in labelled if rel == best)].labels
    return paths


def held_out_depths(paths: list[LabelPath], test_fraction: float, seed: int) -> np.ndarray:
    """Per item, the number of levels at which it is held out (0 = training part only)."""
    counts: dict[LabelPath, int] = {}
    for path in paths:
        for level in range(1, len(path) + 1):
            counts[path[:level]] = counts.get(path[:level], 0) + 1
    groups: dict[LabelPath, list[int]] = {}
    for index, path in enumerate(paths):
        shared = [level for level in range(1, len(path) + 1) if counts[path[:level]] >= 2]
        if shared:
            groups.setdefault(path[: max(shared)], []).append(index)
    depths = np.zeros(len(paths), dtype=int)
    rng = np.random.default_rng(seed)
    for key in sorted(groups):
        members = groups[key]
        n_test = min(len(members) - 1, max(1, round(len(members) * test_fraction)))
        for index in rng.permutation(members)[:n_test]:
            depths[index] = len(key)
    return depths


def probe_scores(vectors: np.ndarray, paths: list[LabelPath], modality: str, seed: int, settings: HierarchySettings) -> dict[str, float]:
    depths = held_out_depths(paths, settings.test_fraction, seed)
    train = depths == 0
    predicted: list[list[LabelPath]] = [[] for _ in paths]
    scores = {}
    for level in range(1, int(depths.max(initial=0)) + 1):
        fit_rows = [i for i in np.flatnonzero(train) if len(paths[i]) >= level]
        test_rows = np.flatnonzero(depths >= level)
        guesses = _probe(vectors[fit_rows], [paths[i][:level] for i in fit_rows], vectors[test_rows], seed, settings)
        truth = [paths[i][:level] for i in test_rows]
        for row, guess in zip(test_rows, guesses):
            predicted[row].append(guess)
        codes = {label: code for code, label in enumerate(sorted(set(truth) | set(guesses)))}
        y_true, y_pred = [codes[t] for t in truth], [codes[g] for g in guesses]
        scores[f"hier_l{level}_{modality}_accuracy"] = float(accuracy_score(y_true, y_pred))
        scores[f"hier_l{level}_{modality}_macro_f1"] = float(f1_score(y_true, y_pred, average="macro"))
    held_out = np.flatnonzero(~train)
    if len(held_out):
        truths = [paths[i][: depths[i]] for i in held_out]
        precision, recall, f1 = hierarchical_prf(truths, [predicted[i] for i in held_out])
        scores[f"hier_path_{modality}_precision"] = precision
        scores[f"hier_path_{modality}_recall"] = recall
        scores[f"hier_path_{modality}_f1"] = f1
        multi_level = [predicted[i] for i in held_out if depths[i] >= 2]
        if multi_level:
            scores[f"hier_path_{modality}_consistency"] = path_consistency(multi_level)
    return scores


def _probe(train_x: np.ndarray, train_labels: list[LabelPath], test_x: np.ndarray, seed: int, settings: HierarchySettings) -> list[LabelPath]:
    classes = sorted(set(train_labels))
    if len(classes) == 1:  # LogisticRegression needs two classes; the only label is the only answer
        return [classes[0]] * len(test_x)
    index = {label: code for code, label in enumerate(classes)}
    probe = LogisticRegression(C=settings.C, max_iter=settings.max_iter, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        probe.fit(train_x, [index[label] for label in train_labels])
    return [classes[code] for code in probe.predict(test_x)]


def hierarchical_prf(true_paths: list[LabelPath], predicted: list[list[LabelPath]]) -> tuple[float, float, float]:
    """Kiritchenko's micro hP, hR, hF; `predicted[i]` holds one predicted label (a path prefix) per level."""
    overlap = n_predicted = n_true = 0
    for truth, guesses in zip(true_paths, predicted):
        true_set = _with_ancestors([truth])
        guess_set = _with_ancestors(guesses)
        overlap += len(true_set & guess_set)
        n_predicted += len(guess_set)
        n_true += len(true_set)
    precision = overlap / n_predicted if n_predicted else 0.0
    recall = overlap / n_true if n_true else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def _with_ancestors(labels: list[LabelPath]) -> set[LabelPath]:
    return {label[:level] for label in labels for level in range(1, len(label) + 1)}


def path_consistency(predicted: list[list[LabelPath]]) -> float:
    """Share of predicted paths in which every level's label extends the label one level up."""
    consistent = sum(all(lower[:-1] == upper for upper, lower in zip(guesses, guesses[1:])) for guesses in predicted)
    return consistent / len(predicted)


def clustering_scores(vectors: np.ndarray, paths: list[LabelPath], seed: int, settings: HierarchySettings) -> dict[str, float]:
    scores = {}
    for level in range(1, max(len(p) for p in paths) + 1):
        rows = [i for i, path in enumerate(paths) if len(path) >= level]
        labels = [paths[i][:level] for i in rows]
        n_labels = len(set(labels))
        if n_labels in (1, len(rows)):  # one cluster, or one item per cluster, scores 1 whatever the embeddings
            continue
        clusters = KMeans(n_clusters=n_labels, n_init=settings.kmeans_n_init, random_state=seed).fit_predict(vectors[rows])
        codes = {label: code for code, label in enumerate(sorted(set(labels)))}
        scores[f"hier_l{level}_doc_v_measure"] = float(v_measure_score([codes[label] for label in labels], clusters))
    return scores


def family_scores(evaluation) -> dict[str, float]:
    if evaluation.doc_vectors is None:  # lexical methods have no embeddings to probe
        return {}
    return hierarchy_scores(evaluation.task, evaluation.split, evaluation.doc_ids, evaluation.doc_vectors,
                            evaluation.query_ids, evaluation.query_vectors, seed=evaluation.seed)


def plot_levels(frame, task: str, plt):
    """Probe accuracy per hierarchy level, one line per row (documents and queries); None without labels."""
    import re

    rows = frame[frame.task == task]
    columns = sorted(c for c in rows.columns if re.fullmatch(r"hier_l\d+_(doc|query)_accuracy", c) and rows[c].notna().any())
    if not columns:
        return None
    figure, axes = plt.subplots(1, 2, figsize=(10, 3.5), sharey=True)
    for axis, modality in zip(axes, ("doc", "query")):
        level_columns = [c for c in columns if f"_{modality}_" in c]
        levels = [int(re.search(r"l(\d+)", c).group(1)) for c in level_columns]
        for (baseline, model, _), group in rows.groupby(["baseline", "model", "config"]):
            values = group[level_columns].mean()
            if values.notna().any():
                axis.plot(levels, values.values, marker="o", label=f"{baseline} ({model})")
        axis.set_title(f"{task}: {modality} probe accuracy by level")
        axis.set_xlabel("level (1 = root)")
        axis.set_xticks(levels or [1])
    axes[0].set_ylabel("accuracy")
    axes[1].legend(fontsize=7, loc="best")
    return figure
