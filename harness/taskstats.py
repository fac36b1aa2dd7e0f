"""Descriptive statistics of a task, for `harness tasks` and the data cards."""

from __future__ import annotations

from collections import Counter

from harness.task import Task


def task_statistics(task: Task) -> dict[str, object]:
    words = [len(doc.full_text.split()) for doc in task.corpus.values()]
    depths = Counter(len(doc.labels) for doc in task.corpus.values())
    stats: dict[str, object] = {"docs": len(task.corpus), "words/doc": round(sum(words) / len(words), 1)}
    for split, pairs in task.qrels.items():
        stats[f"{split}_q"] = len(pairs)
        stats[f"{split}_qrels"] = sum(len(docs) for docs in pairs.values())
    stats["depth"] = "/".join(f"{d}:{n}" for d, n in sorted(depths.items()))
    return stats
