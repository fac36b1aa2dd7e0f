"""Batches for HEAL: several members of each hierarchy leaf per batch, each query beside its document.

Supervised contrastive loss has no positives at the fine levels when a batch holds one item per
leaf, so batches are built from leaf chunks (an m-per-class sampler, as SupCon and HMCE train):

* an instance is a document row and the rows of its queries; its leaf is the document's label path;
* one pass visits every (document, query) pair once, plus each query-less document once. Per leaf,
  the shuffled pairs are cut into chunks of at least `members_per_leaf` rows; a pair adds its query
  and, the first time in the chunk, its document, so a query meets its document in the batch.
  A leaf's last short chunk joins the one before it; a leaf with fewer rows than m is one chunk;
* chunks are shuffled and packed whole into batches of at most `batch_size` rows; a row never
  repeats within a batch. Passes follow each other without a break, and an epoch is a fixed
  ceil(rows / batch_size) batches of that stream, so the trainer's schedule length holds.

With `batch_documents` = D > 0 every batch instead holds exactly D documents and, beside each, up to
r = floor((batch_size - D) / D) of its queries, whatever the labels (so label sources that cut the corpus
into leaves of different sizes still train on the same mix of documents and queries):

* a visit is a document with the next r of its (shuffled) queries; a pass makes ceil(queries / r)
  visits of each document (1 if it has none), so every (document, query) pair comes once a pass;
* per leaf, visits go in rounds (one per document that still has some, in random order) and each
  round is cut into chunks of `members_per_leaf` documents (a short tail joins the chunk before);
* chunks are shuffled and their visits taken in order, D documents a batch; a visit whose document
  is already in the batch waits for the next one;
* with `negatives` (query row -> mined document rows, `hard_negatives` of `heal`), a visit brings the
  negatives of its queries into the batch as extra document rows (those not in it yet), as MNRL's
  extra columns do for a pair: a batch then holds up to D + D*r*(1 + n) rows.
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from dataclasses import dataclass
from typing import Hashable, Iterator

from sentence_transformers.base.sampler import DefaultBatchSampler


@dataclass(frozen=True)
class Instance:
    leaf: Hashable  # the document's label path
    document: int  # dataset row of the document
    queries: tuple[int, ...] = ()  # dataset rows of its training queries


def check_members_per_leaf(members_per_leaf: int, batch_size: int) -> None:
    if members_per_leaf < 2 or 2 * members_per_leaf + 1 > batch_size:
        raise ValueError(f"members_per_leaf must be at least 2 and at most (train_batch_size - 1) / 2, got {members_per_leaf} with train_batch_size {batch_size}")


def check_batch_documents(batch_documents: int, batch_size: int) -> None:
    if batch_documents and not 2 <= batch_documents <= batch_size // 2:
        raise ValueError(f"batch_documents must be 0 or between 2 and train_batch_size / 2, got {batch_documents} with train_batch_size {batch_size}")


class HierarchyBatchSampler(DefaultBatchSampler):
    """Pass `functools.partial(HierarchyBatchSampler, instances=..., members_per_leaf=...)` as the trainer's batch_sampler."""

    def __init__(self, dataset, batch_size: int, drop_last: bool = False, valid_label_columns=None, generator=None, seed: int = 0, *,
                 instances: list[Instance], members_per_leaf: int = 4, batch_documents: int = 0,
                 negatives: dict[int, tuple[int, ...]] | None = None):
        super().__init__(dataset, batch_size=batch_size, drop_last=drop_last, valid_label_columns=valid_label_columns,
                         generator=generator, seed=seed)
        check_members_per_leaf(members_per_leaf, batch_size)
        check_batch_documents(batch_documents, batch_size)
        self.batch_documents = batch_documents
        if negatives and not batch_documents:
            raise ValueError("hard negatives need batch_documents > 0 (weighting = \"by_role\")")
        self.negatives = negatives or {}
        self.queries_per_document = (batch_size - batch_documents) // batch_documents if batch_documents else 0
        # Batches vary in size (at most max_rows). accelerate's DDP sharding (BatchSamplerShard)
        # reads `batch_size`: a number makes it treat every short batch as the epoch's last and stop
        # early; None tells it batches have dynamic length, so each process gets every n-th batch.
        self.max_rows, self.batch_size = batch_size, None
        self.members_per_leaf = members_per_leaf
        self.leaves: dict[Hashable, list[Instance]] = defaultdict(list)
        for instance in instances:
            self.leaves[instance.leaf].append(instance)
        self.n_rows = len({row for i in instances for row in (i.document, *i.queries)})

    def __len__(self) -> int:
        return max(1, math.ceil(self.n_rows / self.max_rows))

    def __iter__(self) -> Iterator[list[int]]:
        rng = random.Random(self.seed + self.epoch)
        batches = self._fixed_batches(rng) if self.batch_documents else self._batches(rng)
        for _ in range(len(self)):
            yield next(batches)

    def leaf_chunks(self, instances: list[Instance], rng: random.Random) -> list[list[int]]:
        pairs = [(i.document, q) for i in instances for q in i.queries] + [(i.document, None) for i in instances if not i.queries]
        rng.shuffle(pairs)
        chunks, chunk = [], []
        for document, query in pairs:
            chunk += ([document] if document not in chunk else []) + ([query] if query is not None else [])
            if len(chunk) >= self.members_per_leaf:
                chunks.append(chunk)
                chunk = []
        if chunk and chunks:
            chunks[-1] += [row for row in chunk if row not in chunks[-1]]
        elif chunk:
            chunks.append(chunk)
        return chunks

    def _chunks(self, rng: random.Random) -> Iterator[list[int]]:
        while True:
            chunks = [c for leaf in sorted(self.leaves, key=repr) for c in self.leaf_chunks(self.leaves[leaf], rng)]
            rng.shuffle(chunks)
            yield from chunks

    def _batches(self, rng: random.Random) -> Iterator[list[int]]:
        batch: list[int] = []
        for chunk in self._chunks(rng):
            fresh = [row for row in chunk if row not in batch]
            if batch and len(batch) + len(fresh) > self.max_rows:
                yield batch
                batch, fresh = [], chunk
            batch += fresh

    def leaf_visits(self, instances: list[Instance], rng: random.Random) -> list[list[tuple[int, ...]]]:
        """Chunks of visits (document row, then up to r query rows), `members_per_leaf` documents each."""
        r = self.queries_per_document
        visits = []
        for instance in instances:
            queries = list(instance.queries)
            rng.shuffle(queries)
            visits.append([(instance.document, *queries[i:i + r]) for i in range(0, len(queries), r)] or [(instance.document,)])
        chunks = []
        while any(visits):
            current = [v.pop() for v in visits if v]
            rng.shuffle(current)
            pieces = [current[i:i + self.members_per_leaf] for i in range(0, len(current), self.members_per_leaf)]
            if len(pieces) > 1 and len(pieces[-1]) < self.members_per_leaf:
                tail = pieces.pop()
                pieces[-1] += tail
            chunks += pieces
        return chunks

    def _fixed_batches(self, rng: random.Random) -> Iterator[list[int]]:
        waiting: list[tuple[int, ...]] = []
        while True:
            chunks = [c for leaf in sorted(self.leaves, key=repr) for c in self.leaf_visits(self.leaves[leaf], rng)]
            rng.shuffle(chunks)
            for visit in (v for chunk in chunks for v in chunk):
                waiting.append(visit)
                batch, documents, held = [], set(), []
                for queued in waiting:
                    if len(documents) == self.batch_documents or queued[0] in batch:
                        held.append(queued)
                    else:
                        documents.add(queued[0])
                        batch += queued
                        for query in queued[1:]:
                            batch += [row for row in self.negatives.get(query, ()) if row not in batch]
                if len(documents) == self.batch_documents:
                    yield batch
                    waiting = held
