"""Exact cosine top-k over normalised embeddings, in query chunks so memory stays flat."""

from __future__ import annotations

from typing import Sequence

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
