"""A baseline as a plugin: TF-IDF vectors and cosine similarity, found through the `harness.methods` entry point."""

from dataclasses import dataclass

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer

from harness.methods.base import Fitted


@dataclass(frozen=True)
class TfidfConfig:
    sublinear_tf: bool = True
    ngram_max: int = 1


class TfidfSearcher:
    def __init__(self, texts: dict[str, str], config: TfidfConfig):
        self.doc_ids = list(texts)
        self.vectorizer = TfidfVectorizer(sublinear_tf=config.sublinear_tf, ngram_range=(1, config.ngram_max))
        self.matrix = self.vectorizer.fit_transform(texts[d] for d in self.doc_ids)

    def search(self, queries: dict[str, str], k: int) -> dict[str, dict[str, float]]:
        scores = (self.vectorizer.transform(queries.values()) @ self.matrix.T).toarray()
        top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        return {qid: {self.doc_ids[j]: float(scores[i, j]) for j in top[i]} for i, qid in enumerate(queries)}


class TfidfMethod:
    name = "tfidf"
    Config = TfidfConfig

    def fit(self, task, config: TfidfConfig, context) -> Fitted:
        return Fitted(TfidfSearcher({d: doc.full_text for d, doc in task.corpus.items()}, config), {"trained": False})
