"""HNMFk: a topic hierarchy of a corpus by recursive NMF whose rank is chosen by stability (LANL's NMFk).

At every node the documents' TF-IDF rows are factorised X ~ W H (W: documents x k memberships,
H: k x features topics) for each candidate k, `n_perturbations` times, each time on a copy of X
whose non-zeros are scaled by U(1 - noise, 1 + noise) and from its own seeded start. The topics of
the runs are matched to a running consensus with the Hungarian algorithm; a rank is stable when
every topic's copies form a tight cluster (silhouette, arccos-of-cosine distance), on the topic
profiles (H rows) and on the document loadings (W columns). The node takes the largest k whose
worst cluster passes `silhouette_threshold` on both (T-ELF's "WH_sill" rule). Each document's
memberships are its W row, regressed on the consensus topics and normalised to sum to 1; it goes
to the argmax child, and each child is split again until `max_depth` levels, fewer than
`min_cluster_size` documents, or k = 1.

Longer than most modules (~370 lines) because it is one algorithm with its cache: splitting the
stability test from the recursion would only pass their shared state around.

Choices where the paper and T-ELF leave room (knobs of `HNMFkConfig` where they matter; the trials
behind them are in BENCHMARKS.md, "HNMFk starts and noise"):
- `init="nndsvdar"` (NNDSVD with its zeros filled by small random values) and `noise=0.3`, where
  T-ELF uses plain NNDSVD and noise 0.015 to 0.025: with near-deterministic starts and small noise
  every run lands in one basin, so over-specified ranks look stable.
- no k >= 2 passing means k = 1, a leaf (T-ELF with 1 among its candidates; it never lowers the
  threshold below the perfect silhouette of k = 1).
- a split that leaves every document in one cluster counts as k = 1 (T-ELF's one-cluster stop).
- coordinate-descent NMF (scikit-learn's default solver) rather than multiplicative updates: same
  objective, faster.
- every node searches the same k_min..k_max, capped by its size (T-ELF's `Ks_deep_max`).
- a child factorises its rows of the corpus-wide TF-IDF (T-ELF's default; no per-node vocabulary).
- topics are L1-normalised, so a membership is the share of a document's reconstructed TF-IDF mass.
- a document with no TF-IDF features gets uniform memberships and so the first child.

Node names: the root is "", its children "0", "1", ..., the children of "0" are "0.0", "0.1", ...
"""

from __future__ import annotations

import hashlib
import io
import json
import warnings
import zipfile
import zlib
from collections import deque
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import sklearn
from scipy.optimize import linear_sum_assignment
from sklearn.decomposition import NMF, non_negative_factorization
from sklearn.exceptions import ConvergenceWarning
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.metrics import silhouette_samples

from harness import atomic
from harness.errors import HarnessError

ALGORITHM_VERSION = 1  # bump when a change alters the hierarchy for unchanged inputs (invalidates caches)
_TOL = 1e-4
_EPS = 1e-12


@dataclass(frozen=True)
class HNMFkConfig:
    k_min: int = 2  # smallest rank tried at a node (k = 1, no split, is always the fallback)
    k_max: int = 8
    n_perturbations: int = 10  # NMF runs per candidate k
    noise: float = 0.3  # each non-zero scaled by U(1 - noise, 1 + noise) per run; see the module docstring
    silhouette_threshold: float = 0.8  # T-ELF's default `sill_thresh`
    max_depth: int = 2  # label levels below the root
    min_cluster_size: int = 20  # a node with fewer documents is not split
    max_features: int = 5000  # TF-IDF vocabulary cap
    min_df: int = 2
    max_df: float = 0.5  # T-ELF's Beaver default
    max_iter: int = 200  # per NMF run; over-specified ranks often use all of it before tolerance 1e-4
    init: str = "nndsvdar"  # per-run NMF start: nndsvdar | random
    seed: int = 0

    def __post_init__(self):
        if not 2 <= self.k_min <= self.k_max:
            raise HarnessError(f"HNMFk needs 2 <= k_min <= k_max, got k_min={self.k_min}, k_max={self.k_max}")
        if self.n_perturbations < 2:
            raise HarnessError(f"HNMFk needs n_perturbations >= 2 to measure stability, got {self.n_perturbations}")
        if self.init not in ("nndsvdar", "random"):
            raise HarnessError(f"HNMFk init must be nndsvdar or random, got {self.init!r}")
        if not 0 <= self.noise < 1:
            raise HarnessError(f"HNMFk noise must be in [0, 1), got {self.noise}")
        if not -1 <= self.silhouette_threshold <= 1:
            raise HarnessError(f"HNMFk silhouette_threshold must be in [-1, 1], got {self.silhouette_threshold}")
        if self.max_depth < 1 or self.min_cluster_size < 2 or self.max_iter < 1:
            raise HarnessError("HNMFk needs max_depth >= 1, min_cluster_size >= 2 and max_iter >= 1")


@dataclass(frozen=True, eq=False)
class Hierarchy:
    """The fitted tree, one entry per input document in input order.

    `memberships[level]` is a (documents x len(level_nodes[level])) array. A row holds the soft
    memberships of the document over the children of its node at that level (summing to 1), or,
    when its path ended higher up, a 1 on its leaf, which is carried down as its own column; so
    the argmax column of a row is always `level_labels(level)` of that document.
    """

    paths: list[tuple[str, ...]]  # hard labels, root -> leaf; shorter where a branch stopped
    level_nodes: list[list[str]]
    memberships: list[np.ndarray]
    chosen_k: dict[str, int]  # every node that ran NMFk -> its k (1 = leaf)
    stability: dict[str, dict[int, tuple[float, float]]]  # node -> k -> (min silhouette of topics, of memberships)

    @property
    def n_levels(self) -> int:
        return len(self.level_nodes)

    def level_labels(self, level: int) -> list[str]:
        """The node of every document at `level` (0 = top), its leaf where its path is shorter."""
        if not 0 <= level < self.n_levels:
            raise ValueError(f"level {level} outside 0..{self.n_levels - 1}")
        return [path[min(level, len(path) - 1)] for path in self.paths]


def fit_hnmfk(texts: list[str], config: HNMFkConfig) -> Hierarchy:
    """HNMFk on the TF-IDF matrix of `texts` (English stop words removed)."""
    if not texts:
        raise HarnessError("HNMFk needs at least one text")
    vectorizer = TfidfVectorizer(
        max_features=config.max_features, min_df=config.min_df, max_df=config.max_df,
        stop_words="english", dtype=np.float64,
    )
    try:
        matrix = vectorizer.fit_transform(texts)
    except ValueError as exc:  # empty vocabulary or contradictory min_df / max_df
        raise HarnessError(f"HNMFk TF-IDF: {exc}") from None
    return fit_hnmfk_matrix(matrix, config)


def fit_hnmfk_matrix(X, config: HNMFkConfig) -> Hierarchy:
    """HNMFk on a non-negative (documents x features) matrix, dense or scipy-sparse."""
    X = _checked_matrix(X)
    n_docs = X.shape[0]
    splits: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # node -> (its documents, their memberships)
    chosen_k: dict[str, int] = {}
    stability: dict[str, dict[int, tuple[float, float]]] = {}
    pending = deque([("", np.arange(n_docs), 0)])
    while pending:
        node, docs, depth = pending.popleft()
        if depth >= config.max_depth or len(docs) < config.min_cluster_size:
            continue
        rows = X[docs]
        rows = rows[:, np.unique(rows.indices)]  # features this node's documents use
        candidates = [k for k in range(config.k_min, config.k_max + 1) if k < len(docs) and k <= rows.shape[1]]
        if not candidates:
            continue
        k, memberships, stability[node] = _nmfk(rows, candidates, config, node)
        labels = memberships.argmax(axis=1) if k > 1 else np.zeros(len(docs), dtype=int)
        if len(np.unique(labels)) < 2:
            chosen_k[node] = 1
            continue
        chosen_k[node] = k
        splits[node] = (docs, memberships)
        for child in range(k):
            if (labels == child).any():
                pending.append((_child_name(node, child), docs[labels == child], depth + 1))
    return _assemble(n_docs, splits, chosen_k, stability)


def cache_key(texts: list[str], config: HNMFkConfig) -> str:
    """Changes with the texts (content and order), any config field, the algorithm and scikit-learn."""
    corpus = hashlib.sha256()
    for text in texts:
        data = text.encode("utf-8")
        corpus.update(len(data).to_bytes(8, "little") + data)
    spec = {
        "algorithm": ALGORITHM_VERSION,
        "sklearn": sklearn.__version__,
        "config": asdict(config),
        "corpus": corpus.hexdigest(),
    }
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def cached_hnmfk(texts: list[str], config: HNMFkConfig, cache_dir: Path) -> Hierarchy:
    """`fit_hnmfk`, stored once per (texts, config) as `cache_dir/hnmfk-<key>.npz` (no pickle)."""
    path = Path(cache_dir) / f"hnmfk-{cache_key(texts, config)}.npz"
    if path.is_file():
        try:
            hierarchy = _read_npz(path.read_bytes())
            if len(hierarchy.paths) == len(texts):
                return hierarchy
        except (OSError, ValueError, KeyError, zipfile.BadZipFile):
            pass  # a damaged cache file is rebuilt and replaced
    hierarchy = fit_hnmfk(texts, config)
    atomic.write_bytes(path, _npz_bytes(hierarchy))
    return hierarchy


# --------------------------------------------------------------------------- NMFk at one node


def _nmfk(X: sp.csr_matrix, candidates: list[int], config: HNMFkConfig, node: str):
    """(k, memberships (documents x k) or None for k = 1, stability per candidate)."""
    stability, consensus = {}, {}
    for k in candidates:
        topics, loadings = _perturbed_fits(X, k, config, node)
        topics, loadings = _aligned(topics, loadings)
        stability[k] = (_min_cluster_silhouette(topics), _min_cluster_silhouette(loadings))
        mean = topics.mean(axis=0)
        consensus[k] = mean / np.maximum(mean.sum(axis=1, keepdims=True), _EPS)
    k = _stable_rank(stability, config.silhouette_threshold)
    if k == 1:
        return 1, None, stability
    return k, _memberships(X, consensus[k], config), stability


def _perturbed_fits(X: sp.csr_matrix, k: int, config: HNMFkConfig, node: str) -> tuple[np.ndarray, np.ndarray]:
    """Topics (runs x k x features, rows summing to 1) and loadings (runs x k x documents)."""
    topics = np.empty((config.n_perturbations, k, X.shape[1]))
    loadings = np.empty((config.n_perturbations, k, X.shape[0]))
    for run in range(config.n_perturbations):
        # seeded by node name, not visiting order, so a subtree does not depend on its siblings
        rng = np.random.default_rng(np.random.SeedSequence(config.seed, spawn_key=(zlib.crc32(node.encode()), k, run)))
        noisy = X.copy()
        noisy.data *= rng.uniform(1 - config.noise, 1 + config.noise, size=noisy.data.shape)
        model = NMF(n_components=k, init=config.init, solver="cd", max_iter=config.max_iter, tol=_TOL,
                    random_state=int(rng.integers(2**31 - 1)))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            W = model.fit_transform(noisy)
        mass = model.components_.sum(axis=1)
        topics[run] = model.components_ / np.maximum(mass, _EPS)[:, None]
        loadings[run] = (W * mass).T
    return topics, loadings


def _aligned(topics: np.ndarray, loadings: np.ndarray, max_rounds: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """Reorder each run's topics (and loadings) to match a consensus, by Hungarian matching on cosine."""
    unit = topics / np.maximum(np.linalg.norm(topics, axis=2, keepdims=True), _EPS)
    order = np.tile(np.arange(topics.shape[1]), (topics.shape[0], 1))
    reference = unit[0]
    for _ in range(max_rounds):
        matched = np.array([linear_sum_assignment(-(reference @ run.T))[1] for run in unit])
        settled = (matched == order).all()
        order = matched
        reference = np.take_along_axis(unit, order[:, :, None], axis=1).mean(axis=0)
        reference /= np.maximum(np.linalg.norm(reference, axis=1, keepdims=True), _EPS)
        if settled:
            break
    return np.take_along_axis(topics, order[:, :, None], axis=1), np.take_along_axis(loadings, order[:, :, None], axis=1)


def _min_cluster_silhouette(vectors: np.ndarray) -> float:
    """Worst mean silhouette over the k clusters formed by topic j of every run (runs x k x dim)."""
    runs, k, dim = vectors.shape
    flat = vectors.reshape(runs * k, dim)
    unit = flat / np.maximum(np.linalg.norm(flat, axis=1, keepdims=True), _EPS)
    distance = np.arccos(np.clip(unit @ unit.T, -1.0, 1.0))
    np.fill_diagonal(distance, 0.0)
    labels = np.tile(np.arange(k), runs)
    scores = silhouette_samples(distance, labels, metric="precomputed")
    return float(min(scores[labels == j].mean() for j in range(k)))


def _stable_rank(stability: dict[int, tuple[float, float]], threshold: float) -> int:
    """T-ELF's WH_sill: min(largest k stable on topics, largest k stable on memberships); 1 if none."""
    on_topics = [k for k, (topics, _) in stability.items() if topics >= threshold]
    on_memberships = [k for k, (_, members) in stability.items() if members >= threshold]
    if not on_topics or not on_memberships:
        return 1
    return min(max(on_topics), max(on_memberships))


def _memberships(X: sp.csr_matrix, topics: np.ndarray, config: HNMFkConfig) -> np.ndarray:
    """Non-negative least-squares W for fixed consensus topics, rows normalised to sum to 1."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        W, _, _ = non_negative_factorization(
            X, H=topics, n_components=topics.shape[0], update_H=False, solver="cd",
            max_iter=config.max_iter, tol=_TOL,
        )
    total = W.sum(axis=1, keepdims=True)
    return np.where(total > 0, W / np.maximum(total, _EPS), 1.0 / topics.shape[0])


# --------------------------------------------------------------------------- the tree


def _child_name(node: str, index: int) -> str:
    return f"{node}.{index}" if node else str(index)


def _checked_matrix(X) -> sp.csr_matrix:
    matrix = sp.csr_matrix(X, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[0] < 2 or matrix.shape[1] < 1:
        raise HarnessError(f"HNMFk needs a (documents x features) matrix with >= 2 documents, got shape {matrix.shape}")
    if not np.isfinite(matrix.data).all() or (matrix.data < 0).any():
        raise HarnessError("HNMFk needs a finite non-negative matrix")
    matrix.eliminate_zeros()
    return matrix


def _assemble(n_docs: int, splits: dict, chosen_k: dict[str, int], stability: dict) -> Hierarchy:
    paths = [_path(doc, splits) for doc in range(n_docs)]
    level_nodes: list[list[str]] = []
    memberships: list[np.ndarray] = []
    parents = [""] if "" in splits else []
    holders = {node for path in paths for node in path}  # nodes with at least one document
    while parents:
        columns = [c for p in parents for c in (_children(p, splits) if p in splits else [p]) if c in holders or p in splits]
        index = {name: i for i, name in enumerate(columns)}
        level = np.zeros((n_docs, len(columns)))
        for parent in parents:
            if parent in splits:
                docs, soft = splits[parent]
                first = index[_child_name(parent, 0)]
                level[docs, first:first + soft.shape[1]] = soft
            else:
                level[[d for d, path in enumerate(paths) if path[-1] == parent], index[parent]] = 1.0
        level_nodes.append(columns)
        memberships.append(level)
        parents = [c for c in columns if c in holders]
        if not any(p in splits for p in parents):
            break
    return Hierarchy(paths, level_nodes, memberships, chosen_k, stability)


def _children(node: str, splits: dict) -> list[str]:
    return [_child_name(node, i) for i in range(splits[node][1].shape[1])]


def _path(doc: int, splits: dict) -> tuple[str, ...]:
    path, node = [], ""
    while node in splits:
        docs, soft = splits[node]
        row = int(np.searchsorted(docs, doc))  # documents of a node stay in ascending order
        node = _child_name(node, int(soft[row].argmax()))
        path.append(node)
    return tuple(path)


# --------------------------------------------------------------------------- cache file


def _npz_bytes(hierarchy: Hierarchy) -> bytes:
    meta = {
        "paths": [list(p) for p in hierarchy.paths],
        "level_nodes": hierarchy.level_nodes,
        "chosen_k": hierarchy.chosen_k,
        "stability": {node: {str(k): list(v) for k, v in per_k.items()} for node, per_k in hierarchy.stability.items()},
    }
    arrays = {f"memberships_{i}": m for i, m in enumerate(hierarchy.memberships)}
    buffer = io.BytesIO()
    np.savez_compressed(buffer, meta=np.array(json.dumps(meta)), **arrays)
    return buffer.getvalue()


def _read_npz(data: bytes) -> Hierarchy:
    with np.load(io.BytesIO(data), allow_pickle=False) as stored:
        meta = json.loads(str(stored["meta"]))
        memberships = [stored[f"memberships_{i}"] for i in range(len(meta["level_nodes"]))]
    return Hierarchy(
        paths=[tuple(p) for p in meta["paths"]],
        level_nodes=meta["level_nodes"],
        memberships=memberships,
        chosen_k={node: int(k) for node, k in meta["chosen_k"].items()},
        stability={node: {int(k): tuple(v) for k, v in per_k.items()} for node, per_k in meta["stability"].items()},
    )
