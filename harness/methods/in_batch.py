"""In-batch contrastive pieces of the causal-LM methods (`llm-cl`, `lbr` stage 2): duplicate-free batches and InfoNCE.

Several queries share a document on these tasks, so batches are drawn duplicate-free (no document or
query text twice in a batch) and any other positive of a query that still lands in its batch is
masked out of the negatives.
"""

from __future__ import annotations

import random
from typing import Iterator, Sequence

import torch
import torch.nn.functional as F

from harness.errors import HarnessError


class DuplicateFreeBatches:
    """Endless batches of pair indices in which no document text and no query text occurs twice.

    Each epoch is a fresh shuffle; a pair that would repeat a text waits for a later batch of the same epoch.
    """

    def __init__(self, pairs: Sequence[tuple[str, str]], batch_size: int, rng: random.Random):
        if len({d for _, d in pairs}) < 2:
            raise HarnessError("contrastive training needs train pairs with at least 2 distinct documents")
        self.pairs, self.batch_size, self.rng = pairs, batch_size, rng

    def __iter__(self) -> Iterator[list[int]]:
        while True:
            waiting = list(range(len(self.pairs)))
            self.rng.shuffle(waiting)
            while waiting:
                batch, later, queries, docs = [], [], set(), set()
                for i in waiting:
                    query, doc = self.pairs[i]
                    if len(batch) < self.batch_size and query not in queries and doc not in docs:
                        batch.append(i)
                        queries.add(query)
                        docs.add(doc)
                    else:
                        later.append(i)
                waiting = later
                yield batch


def false_negatives(queries: Sequence[str], docs: Sequence[str], positives: dict[str, set[str]]) -> torch.Tensor:
    """(q, d) True where batch document d is a positive of batch query q other than its own pair."""
    return torch.tensor(
        [[i != j and doc in positives.get(query, ()) for j, doc in enumerate(docs)] for i, query in enumerate(queries)],
        dtype=torch.bool,
    )


def positives_by_query(pairs: Sequence[tuple[str, str]]) -> dict[str, set[str]]:
    positives: dict[str, set[str]] = {}
    for query, doc in pairs:
        positives.setdefault(query, set()).add(doc)
    return positives


def info_nce(queries: torch.Tensor, docs: torch.Tensor, tau: float, masked: torch.Tensor | None = None) -> torch.Tensor:
    """Cross-entropy of query i against document i, with the other in-batch documents as negatives."""
    scores = queries.float() @ docs.float().T / tau
    if masked is not None:
        scores = scores.masked_fill(masked.to(scores.device), float("-inf"))
    return F.cross_entropy(scores, torch.arange(len(queries), device=scores.device))
