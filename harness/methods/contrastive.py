"""`contrastive`: full fine-tune of the base embedder with in-batch negatives on the train qrels.

The data are the task's (query, relevant document) pairs from `qrels/train.tsv`. The loss is
MultipleNegativesRankingLoss (`loss = "mnrl"`) or its GradCache form for large batches on a
small memory (`loss = "cached_mnrl"`, same gradients). Batches never hold two pairs with the same
text (`BatchSamplers.NO_DUPLICATES`): on tasks with many queries per document a random batch
often pairs a query with its own document as a "negative", which measurably stops learning.

Optional hard negatives (`hard_negatives = n`, default 0 = off; BM25 or dense miner, see
`harness.methods.hard_negatives`) become extra columns, which MNRL treats as additional negatives
for their row.

`max_pairs_per_query = n` (default 0 = every pair) keeps at most n positives per train query, a seeded
choice, so queries with long relevance lists (healthcare's disease queries: 96% of its pairs) do not
drown the rest; n = 1 weighs every query alike.

`length_buckets = n` (default 1 = one pass per column, the library's MNRL) embeds each column of a
batch in n forward passes over its rows sorted by length (`harness.methods.length_buckets`): same
batch, negatives, loss and gradients, less padding. Off by default because dropout then draws its masks
in another order (and the kernels round differently), so a run with it on is a new result, hashed
under its own key, not a rerun of a stored one.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from harness.config_fields import added_later
from harness.errors import HarnessError
from harness.methods.base import FitContext, Fitted, require_train_split
from harness.methods.hard_negatives import HardNegativeFields, training_negatives
from harness.methods.st_training import TrainConfig, finish, load_base_model, train
from harness.task import Task

LOSSES = ("mnrl", "cached_mnrl")


@dataclass(frozen=True)
class ContrastiveConfig(HardNegativeFields, TrainConfig):
    loss: str = "mnrl"  # mnrl | cached_mnrl
    scale: float = 20.0  # 1 / temperature of the in-batch softmax
    mini_batch_size: int = 32  # cached_mnrl: texts per forward pass
    max_pairs_per_query: int = added_later(0)  # positives kept per train query (seeded choice); 0 = all
    length_buckets: int = added_later(1)  # mnrl: forward passes per column over rows sorted by length; 1 = one pass

    def check(self, task: Task) -> None:
        require_train_split(task, "contrastive training")
        if self.loss not in LOSSES:
            raise HarnessError(f"contrastive loss must be one of {', '.join(LOSSES)}, got {self.loss!r}")
        self.check_hard_negatives()
        if self.max_pairs_per_query < 0:
            raise HarnessError(f"max_pairs_per_query must be >= 0 (0 = all pairs), got {self.max_pairs_per_query}")
        if self.length_buckets < 1:
            raise HarnessError(f"length_buckets must be >= 1 (1 = one forward pass per column), got {self.length_buckets}")
        if self.length_buckets > 1 and self.loss != "mnrl":
            raise HarnessError(f"length_buckets applies to loss = \"mnrl\" ({self.loss} splits batches itself); set length_buckets = 1")


def pairs_dataset(task: Task, config: ContrastiveConfig, model=None, seed: int = 0, show_progress: bool = False):
    """Columns anchor, positive[, negative_1..n]: one row per positive train qrel (at most
    `max_pairs_per_query` per query, chosen with `seed`)."""
    from datasets import Dataset

    negatives = training_negatives(task, config, model, seed, show_progress)
    rows: dict[str, list[str]] = {"anchor": [], "positive": []}
    rows.update({f"negative_{i + 1}": [] for i in range(config.hard_negatives)})
    choose = random.Random(seed)
    for qid, docs in task.qrels["train"].items():
        mined = negatives.get(qid, [])
        if config.hard_negatives and len(mined) < config.hard_negatives:
            continue  # only when the corpus is smaller than skip + count + relevant documents
        positives = sorted(did for did, rel in docs.items() if rel > 0)
        if 0 < config.max_pairs_per_query < len(positives):
            positives = sorted(choose.sample(positives, config.max_pairs_per_query))
        for did in positives:
            rows["anchor"].append(config.query_prefix + task.queries[qid])
            rows["positive"].append(config.document_prefix + task.corpus[did].full_text)
            for i, neg in enumerate(mined):
                rows[f"negative_{i + 1}"].append(config.document_prefix + task.corpus[neg].full_text)
    return Dataset.from_dict(rows)


def ranking_loss(model, config: ContrastiveConfig):
    from sentence_transformers.sentence_transformer.losses import (
        CachedMultipleNegativesRankingLoss,
        MultipleNegativesRankingLoss,
    )

    if config.loss == "mnrl" and config.length_buckets > 1:
        from harness.methods.length_buckets import LengthBucketedMNRL

        return LengthBucketedMNRL(model, scale=config.scale, length_buckets=config.length_buckets)
    if config.loss == "mnrl":
        return MultipleNegativesRankingLoss(model, scale=config.scale)
    if config.loss == "cached_mnrl":
        return CachedMultipleNegativesRankingLoss(model, scale=config.scale, mini_batch_size=config.mini_batch_size)
    raise ValueError(f"unknown loss {config.loss!r}")  # ContrastiveConfig.check rejects it first


class Contrastive:
    name = "contrastive"
    Config = ContrastiveConfig

    def prepare(self, model, config: ContrastiveConfig) -> dict:
        """Hook for subclasses that change what is trained (LoRA); full fine-tuning changes nothing."""
        return {"finetune": "full"}

    def fit(self, task: Task, config: ContrastiveConfig, context: FitContext) -> Fitted:
        from sentence_transformers.base.sampler import BatchSamplers

        config.check(task)
        model = load_base_model(config, context.device)
        dataset = pairs_dataset(task, config, model, context.seed, context.show_progress)  # dense mining scores with the untouched base model
        adapted = self.prepare(model, config)
        info = train(model, ranking_loss(model, config), dataset, task, config, context, BatchSamplers.NO_DUPLICATES)
        return finish(model, config, context, {**adapted, **info})
