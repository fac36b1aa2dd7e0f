"""Exact cosine top-k over normalised embeddings, in query chunks so memory stays flat, and encode-then-search."""

from __future__ import annotations

from typing import NamedTuple, Sequence

import numpy as np
import torch

Run = dict[str, dict[str, float]]  # query id -> {doc id: score}, top-k only


def exact_search(
    query_ids: Sequence[str],
    query_vectors: np.ndarray,
    doc_ids: Sequence[str],
    doc_vectors: np.ndarray,
    k: int,
    chunk: int = 1024,
) -> Run:
    docs = torch.from_numpy(np.ascontiguousarray(doc_vectors, dtype=np.float32))
    k = min(k, len(doc_ids))
    run: Run = {}
    for start in range(0, len(query_ids), chunk):
        queries = torch.from_numpy(np.ascontiguousarray(query_vectors[start : start + chunk], dtype=np.float32))
        scores, indices = torch.topk(queries @ docs.T, k, dim=1)
        for row, qid in enumerate(query_ids[start : start + chunk]):
            run[qid] = {doc_ids[i]: float(s) for i, s in zip(indices[row].tolist(), scores[row].tolist())}
    return run


class DenseRun(NamedTuple):
    """A run plus the embeddings behind it, in the order they were encoded."""

    run: Run
    doc_ids: list[str]
    doc_vectors: np.ndarray
    query_ids: list[str]
    query_vectors: np.ndarray


def dense_search(encoder, documents: dict[str, str], queries: dict[str, str], k: int) -> DenseRun:
    """Encode every document and query with `encoder` (`encode(texts, kind) -> array`), then exact top-k."""
    doc_ids, query_ids = list(documents), list(queries)
    doc_vectors = encoder.encode([documents[d] for d in doc_ids], "document")
    query_vectors = encoder.encode([queries[q] for q in query_ids], "query")
    return DenseRun(exact_search(query_ids, query_vectors, doc_ids, doc_vectors, k), doc_ids, doc_vectors, query_ids, query_vectors)
