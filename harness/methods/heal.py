"""`heal`: the embedder fine-tuned with the Hierarchical Embedding Alignment Loss (arXiv 2412.04661).

Training items are every corpus document (its label path) and every train query (the path of
its most relevant document, ties broken by document id), trained jointly as the paper trains
documents with its generated questions. The loss (`harness.methods.heal_loss`) is a level-wise
supervised contrastive loss over the label levels plus, with `instance_level` (default on), the
document itself as the finest level, so a query and its document are mutual positives. Batches
come from `harness.methods.hierarchy_sampler` (at least `members_per_leaf` items per leaf).

How the levels are weighted (`weighting`):
* "by_depth" (default, how the stored results were trained): `lambda_schedule` over every column,
  the instance level included, so the instance level's share of the weight depends on how many
  label levels the source has (cyber: 41% with HNMFk's 2 levels, 59% with the 3 gold levels, whose
  finest is one label per document and so counts the instance level twice);
* "by_role": the instance level weighs `instance_weight`; the label ("cluster") levels share
  `cluster_weight` in the proportions of `lambda_schedule`; label levels that add no grouping are
  merged away first (a level where every document has its own label is the instance level again; a
  level grouping exactly like the one above repeats it). Batches then hold a fixed number of
  documents (`batch_documents`, by default half the batch) each beside its queries (see the
  sampler), so label sources also share one batch composition. A level of weight 0 is left out of
  the loss (`cluster_weight = 0`: the instance term alone).
One switch, `weighting`, turns all of this on, so that a stored by-depth result is reproduced by its
baseline with that one key back at its default.

Where the labels come from (`label_source`):
* "hnmfk" (default, the paper's way): `harness.methods.hnmfk` on the corpus's TF-IDF, cached under
  runs/hnmfk; its seed is fixed, so every training seed sees the same hierarchy;
* "gold": the task's curated paths (`Document.labels`), an ablation of the clustering step;
* "none": no labels (one leaf, so batches are random groups of documents with their queries).
Hard negatives (`hard_negatives = n`, by_role only; the miners and filters of `contrastive`, see
`harness.methods.hard_negatives`): each train query's n mined documents join its batch as document
rows, so the loss sees them beside their label paths: a negative at the instance level, a positive at
any label level they share with the query's document (the hierarchy decides, not the miner).
`fuzzy = true` weights positives within a label level by HNMFk's soft memberships (hnmfk only). `finetune = "lora"`
trains a LoRA adapter (the `lora_*` keys) instead of all weights. The other knobs are
documented in `harness.methods.heal_loss`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from functools import partial

import numpy as np
import torch

from harness.errors import HarnessError
from harness.methods.base import FitContext, Fitted, require_train_split
from harness.config_fields import added_later
from harness.methods.hard_negatives import HardNegativeFields, training_negatives
from harness.methods.heal_loss import POSITIVES, SCHEDULES, HEALLoss, level_weights, role_weights
from harness.methods.hierarchy_sampler import HierarchyBatchSampler, Instance, check_batch_documents, check_members_per_leaf
from harness.methods.hnmfk import HNMFkConfig, cached_hnmfk
from harness.methods.st_training import LoraFields, TrainConfig, add_lora, finish, load_base_model, train
from harness.paths import runs_dir
from harness.task import Task

LABEL_SOURCES = ("hnmfk", "gold", "none")
WEIGHTINGS = ("by_depth", "by_role")
FINETUNES = ("full", "lora")


@dataclass(frozen=True)
class HEALConfig(HardNegativeFields, LoraFields, TrainConfig):
    reference = "contrastive"  # a class attribute, not a field: heal rows are compared with contrastive
    learning_rate: float = 1e-4  # chosen on cyber dev over 5e-5
    label_source: str = "hnmfk"  # hnmfk | gold | none
    lambda_schedule: str = "finer"  # finer (2^((l+1)/D)) | uniform | coarser (decay^l) | hmce (2^(1/d), d = 1 finest)
    lambda_decay: float = 0.5  # coarser only
    tau: float = 0.1  # softmax temperature; 0.1 beat 0.05 (MNRL's 1/20) on cyber dev
    positives: str = "prefix"  # prefix (same labels down to level l) | label (same level-l label)
    fuzzy: bool = False  # weight positives by HNMFk soft memberships
    instance_level: bool = True  # the document (and its queries) as the finest level
    members_per_leaf: int = 4  # items (documents with batch_documents) of one leaf drawn together into a batch
    # added after results were stored (issue #17): out of the hash while at their defaults
    weighting: str = added_later("by_depth")  # by_depth (schedule over all columns) | by_role (see the module docstring)
    instance_weight: float = added_later(1.0)  # by_role: lambda of the instance level
    cluster_weight: float = added_later(0.5)  # by_role: total lambda of the label levels (a share of the instance's at weight 1)
    batch_documents: int = added_later(0)  # documents per batch, the rest their queries; 0 = half the batch with by_role, leaf chunks of rows with by_depth
    hard_negatives: int = added_later(0)  # mined documents put into each train query's batch (by_role); 0 = none
    hard_negative_skip: int = added_later(0)  # best non-relevant candidates skipped by the miner
    finetune: str = "full"  # full | lora
    length_buckets: int = 4  # forward passes per batch over rows sorted by length (speed only; 1 = one pass)
    hnmfk: dict = field(default_factory=dict)  # overrides of harness.methods.hnmfk.HNMFkConfig fields

    def documents_per_batch(self) -> int:
        """The sampler's fixed number of documents per batch; 0 = its by-depth leaf chunks."""
        return self.batch_documents or (self.train_batch_size // 2 if self.weighting == "by_role" else 0)

    def check(self, task: Task) -> None:
        require_train_split(task, "heal")
        choices = {"label_source": LABEL_SOURCES, "lambda_schedule": SCHEDULES, "positives": POSITIVES, "finetune": FINETUNES,
                   "weighting": WEIGHTINGS}
        for key, allowed in choices.items():
            if getattr(self, key) not in allowed:
                raise HarnessError(f"heal {key} must be one of {', '.join(allowed)}, got {getattr(self, key)!r}")
        if self.fuzzy and self.label_source != "hnmfk":
            raise HarnessError("heal fuzzy = true needs label_source = \"hnmfk\": gold paths carry no soft memberships")
        if self.weighting == "by_role" and not self.instance_level:
            raise HarnessError("heal weighting = \"by_role\" always has the instance level; set instance_weight = 0 to leave it out")
        if min(self.instance_weight, self.cluster_weight) < 0 or self.instance_weight + self.cluster_weight <= 0:
            raise HarnessError(f"heal instance_weight and cluster_weight must be >= 0, not both 0; got {self.instance_weight}, {self.cluster_weight}")
        if self.tau <= 0:
            raise HarnessError(f"heal tau must be positive, got {self.tau}")
        try:
            check_members_per_leaf(self.members_per_leaf, self.train_batch_size)
            check_batch_documents(self.documents_per_batch(), self.train_batch_size)
        except ValueError as exc:
            raise HarnessError(f"heal {exc}") from None
        if self.batch_documents and self.weighting != "by_role":
            raise HarnessError("heal batch_documents needs weighting = \"by_role\"")
        if self.hard_negatives and self.weighting != "by_role":
            raise HarnessError("heal hard_negatives needs weighting = \"by_role\" (batches of a fixed number of documents)")
        self.check_hard_negatives()
        unknown = sorted(set(self.hnmfk) - {f.name for f in dataclasses.fields(HNMFkConfig)})
        if unknown:
            raise HarnessError(f"heal hnmfk keys {unknown} are not HNMFk settings (known: {', '.join(f.name for f in dataclasses.fields(HNMFkConfig))})")


@dataclass(frozen=True)
class LabelTable:
    """One row per training item: documents first, then queries."""

    texts: list[str]
    paths: torch.Tensor  # (rows, levels) int, -1 below the end of a path
    level_names: list[str]
    memberships: list[torch.Tensor | None] | None
    instances: list[Instance]
    doc_ids: list[str]  # document of each document row (rows 0 .. len - 1)
    query_ids: list[str]  # train query of each query row, in row order (after the documents)
    info: dict


def document_labels(task: Task, config: HEALConfig, doc_ids: list[str]):
    """(path per document, soft memberships per level or None, level names, info)."""
    if config.label_source == "none":
        return [()] * len(doc_ids), None, [], {"label_source": "none"}
    if config.label_source == "gold":
        paths = [task.corpus[d].labels for d in doc_ids]
        if not any(paths):
            raise HarnessError(f"task {task.name!r} has no label paths; use label_source = \"hnmfk\"")
        depth = max(len(p) for p in paths)
        names = list(task.metadata.get("label_levels") or [])
        names = names if len(names) == depth else [f"level{level}" for level in range(depth)]
        return paths, None, names, {"label_source": "gold"}
    hierarchy = cached_hnmfk([task.corpus[d].full_text for d in doc_ids], HNMFkConfig(**config.hnmfk), runs_dir() / "hnmfk")
    if not any(hierarchy.paths):
        raise HarnessError("HNMFk found no stable split of the corpus; loosen `hnmfk` (e.g. min_cluster_size, silhouette_threshold) or use label_source = \"gold\"")
    names = [f"hnmfk{level}" for level in range(hierarchy.n_levels)]
    info = {
        "label_source": "hnmfk",
        "hnmfk_nodes_per_level": [len(nodes) for nodes in hierarchy.level_nodes],
        "hnmfk_leaves": len(set(hierarchy.paths)),
        "hnmfk_root_k": hierarchy.chosen_k.get("", 1),
    }
    return hierarchy.paths, hierarchy.memberships, names, info


def merged_levels(doc_paths, soft, names, info, positives):
    """The label levels without the redundant ones (`redundant_levels`); paths, memberships and names alike."""
    depth = len(names)
    vocab = [{} for _ in range(depth)]
    codes = np.array([[vocab[level].setdefault(path[level], len(vocab[level])) if level < len(path) else -1 for level in range(depth)]
                      for path in doc_paths], dtype=np.int64).reshape(len(doc_paths), depth)
    drop = set(redundant_levels(codes, positives))
    keep = [level for level in range(depth) if level not in drop]
    paths = [tuple(path[level] for level in keep if level < len(path)) for path in doc_paths]
    soft = [soft[level] for level in keep] if soft is not None else None
    return paths, soft, [names[level] for level in keep], {**info, "merged_levels": [names[level] for level in sorted(drop)]}


def training_query_documents(task: Task) -> dict[str, str]:
    """train query id -> the document whose path it inherits: highest relevance, then smallest id."""
    chosen = {}
    for qid, docs in sorted(task.qrels["train"].items()):
        relevant = [(rel, did) for did, rel in docs.items() if rel > 0]
        if relevant:
            chosen[qid] = min(relevant, key=lambda item: (-item[0], item[1]))[1]
    return chosen


def redundant_levels(codes: np.ndarray, positives: str) -> list[int]:
    """Label levels (columns of a documents x levels code matrix, -1 = none) that add no grouping: those
    where every labelled document has a label of its own (document identity: the instance level) and
    those that group the documents exactly as the last level kept above them."""
    redundant, above = [], None
    for level in range(codes.shape[1]):
        keys = codes[:, : level + 1] if positives == "prefix" else codes[:, level : level + 1]
        ids: dict[tuple, int] = {}
        groups = tuple(ids.setdefault(tuple(key), len(ids)) if code >= 0 else -1 for key, code in zip(keys.tolist(), codes[:, level]))
        labelled = int((codes[:, level] >= 0).sum())
        if len(ids) == labelled or groups == above:
            redundant.append(level)
        else:
            above = groups
    return redundant


def label_table(task: Task, config: HEALConfig) -> LabelTable:
    doc_ids = sorted(task.corpus)
    doc_paths, soft, names, info = document_labels(task, config, doc_ids)
    if config.weighting == "by_role":
        doc_paths, soft, names, info = merged_levels(doc_paths, soft, names, info, config.positives)
    depth = len(names)
    doc_row = {d: i for i, d in enumerate(doc_ids)}
    query_docs = training_query_documents(task)
    texts = [config.document_prefix + task.corpus[d].full_text for d in doc_ids]
    texts += [config.query_prefix + task.queries[q] for q in query_docs]
    owner = list(range(len(doc_ids))) + [doc_row[d] for d in query_docs.values()]  # row -> its document

    vocab = [{} for _ in range(depth)]  # per level: label -> id
    doc_codes = np.full((len(doc_ids), depth + int(config.instance_level)), -1, dtype=np.int64)
    for i, path in enumerate(doc_paths):
        for level, label in enumerate(path):
            doc_codes[i, level] = vocab[level].setdefault(label, len(vocab[level]))
    if config.instance_level:
        doc_codes[:, depth] = np.arange(len(doc_ids))
        names = [*names, "instance"]
    paths = torch.from_numpy(doc_codes[owner])

    memberships = None
    if config.fuzzy:
        rows = [torch.from_numpy(np.asarray(m, dtype=np.float32)[owner]) for m in soft]
        for level, level_rows in enumerate(rows):  # below the end of a path there are no positives
            level_rows[paths[:, level] < 0] = 0.0
        memberships = rows + [None] * config.instance_level

    queries_of: dict[int, list[int]] = {i: [] for i in range(len(doc_ids))}
    for row, doc in enumerate(owner[len(doc_ids):], start=len(doc_ids)):
        queries_of[doc].append(row)
    instances = [Instance(leaf=tuple(doc_paths[i]), document=i, queries=tuple(queries_of[i])) for i in range(len(doc_ids))]
    info = {**info, "levels": names, "documents": len(doc_ids), "queries": len(query_docs), "leaves": len({i.leaf for i in instances})}
    level_prefix = [f"L{level}_{name}" for level, name in enumerate(names)]
    return LabelTable(texts, paths, level_prefix, memberships, instances, doc_ids, list(query_docs), info)


def loss_levels(table: LabelTable, config: HEALConfig):
    """(paths, level names, lambdas, memberships) of the columns the loss uses: every column with
    `by_depth`; with `by_role` the label levels then the instance level, less those of weight 0."""
    n_columns = len(table.level_names)
    if config.weighting == "by_depth":
        return table.paths, table.level_names, level_weights(config.lambda_schedule, n_columns, config.lambda_decay), table.memberships
    lambdas = role_weights(config.lambda_schedule, n_columns - 1, config.cluster_weight, config.instance_weight, config.lambda_decay)
    keep = [column for column, weight in enumerate(lambdas) if weight > 0]
    memberships = [table.memberships[c] for c in keep] if table.memberships is not None else None
    return table.paths[:, keep], [table.level_names[c] for c in keep], [lambdas[c] for c in keep], memberships


def batch_negatives(task: Task, table: LabelTable, config: HEALConfig, model, context: FitContext):
    """(query row -> mined document rows, train_info entries); empty without `hard_negatives`."""
    if not config.hard_negatives:
        return {}, {}
    mined = training_negatives(task, config, model, context.seed, context.show_progress)
    doc_row = {d: i for i, d in enumerate(table.doc_ids)}
    rows = {len(table.doc_ids) + j: tuple(doc_row[d] for d in mined[qid])
            for j, qid in enumerate(table.query_ids) if len(mined.get(qid, ())) >= config.hard_negatives}
    return rows, {"hard_negative_queries": len(rows), "train_queries": len(table.query_ids)}


class HEAL:
    name = "heal"
    Config = HEALConfig

    def fit(self, task: Task, config: HEALConfig, context: FitContext) -> Fitted:
        from datasets import Dataset

        config.check(task)
        table = label_table(task, config)
        model = load_base_model(config, context.device)
        negatives, mined = batch_negatives(task, table, config, model, context)  # the untouched base model mines
        adapted = {"finetune": config.finetune, **mined}
        if config.finetune == "lora":
            adapted["lora_target_modules"] = list(add_lora(model, config))
        paths, level_names, lambdas, memberships = loss_levels(table, config)
        loss = HEALLoss(model, paths, level_names, lambdas, config.tau, config.positives, memberships, config.length_buckets)
        dataset = Dataset.from_dict({"text": table.texts, "label": list(range(len(table.texts)))})
        sampler = partial(HierarchyBatchSampler, instances=table.instances, members_per_leaf=config.members_per_leaf,
                          batch_documents=config.documents_per_batch(), negatives=negatives)
        info = train(model, loss, dataset, task, config, context, sampler)
        weights = {"lambdas": [round(x, 4) for x in lambdas]}
        if config.weighting == "by_role":
            weights = {**weights, "loss_levels": level_names, "weighting": "by_role", "batch_documents": config.documents_per_batch()}
        return finish(model, config, context, {**adapted, **table.info, **weights, **info})
