"""`bm25`: lexical baseline with bm25s (Lucene's BM25 variant by default)."""

from __future__ import annotations

from dataclasses import dataclass

import bm25s
import numpy as np

from harness.methods.base import FitContext, Fitted, MethodConfig
from harness.search import Run
from harness.task import Task


@dataclass(frozen=True)
class BM25Config(MethodConfig):
    k1: float = 1.5
    b: float = 0.75
    variant: str = "lucene"  # bm25s method: lucene | robertson | atire | bm25l | bm25+
    stopwords: str = "en"

    def model_slug(self) -> str:
        return "lexical"


class BM25Searcher:
    def __init__(self, task: Task, config: BM25Config, show_progress: bool):
        self.doc_ids = list(task.corpus)
        self.config, self.show_progress = config, show_progress
        texts = [task.corpus[d].full_text for d in self.doc_ids]
        self.index = bm25s.BM25(k1=config.k1, b=config.b, method=config.variant)
        self.index.index(bm25s.tokenize(texts, stopwords=config.stopwords, show_progress=False), show_progress=False)

    def search(self, queries: dict[str, str], k: int) -> Run:
        query_ids = list(queries)
        tokens = bm25s.tokenize([queries[q] for q in query_ids], stopwords=self.config.stopwords, show_progress=False)
        k = min(k, len(self.doc_ids))
        indices, scores = self.index.retrieve(tokens, k=k, show_progress=self.show_progress, n_threads=1)
        return {
            qid: {self.doc_ids[i]: float(s) for i, s in zip(np.asarray(indices[row]), np.asarray(scores[row]))}
            for row, qid in enumerate(query_ids)
        }


class BM25:
    name = "bm25"
    Config = BM25Config

    def fit(self, task: Task, config: BM25Config, context: FitContext) -> Fitted:
        config.check(task)
        return Fitted(BM25Searcher(task, config, context.show_progress), {"trained": False})
