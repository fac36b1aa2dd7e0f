"""A harness Task as an mteb v2 retrieval task, so `mteb.evaluate` scores the same data offline."""

from __future__ import annotations

from harness.task import Task


def mteb_task_name(task_name: str) -> str:
    return f"Harness{task_name.title().replace('-', '')}Retrieval"


def to_mteb_task(task: Task, split: str = "test", domains: list[str] | None = None):
    """An `AbsTaskRetrieval` instance whose `load_data` serves the task's corpus, queries and qrels."""
    from datasets import Dataset
    from mteb.abstasks.retrieval import AbsTaskRetrieval
    from mteb.abstasks.retrieval_dataset_loaders import RetrievalSplitData
    from mteb.abstasks.task_metadata import TaskMetadata

    # mteb's TaskDomain is a closed list (no "Cybersecurity"): cards map to the nearest, or none.
    metadata = TaskMetadata(
        name=mteb_task_name(task.name),
        description=f"harness task {task.name!r} ({task.profile} profile), served from a local BEIR folder.",
        reference=None,
        dataset={"path": f"harness/{task.name}", "revision": task.metadata.get("build", {}).get("checksums", {}).get("corpus.jsonl", "local")[:12]},
        type="Retrieval",
        category="t2t",
        modalities=["text"],
        eval_splits=[split],
        eval_langs=["eng-Latn"],
        main_score=task.main_score,
        date=None,
        domains=domains or None,
        task_subtypes=None,
        license=None,
        annotations_creators="derived",
        dialect=[],
        sample_creation="found",
        bibtex_citation="",
    )

    class HarnessRetrieval(AbsTaskRetrieval):
        ignore_identical_ids = False

        def load_data(self, num_proc=None, **kwargs):
            if self.data_loaded:
                return
            queries = task.split_queries(split)
            self.dataset = {
                "default": {
                    split: RetrievalSplitData(
                        corpus=Dataset.from_list(
                            [{"id": d, "title": doc.title, "text": doc.text} for d, doc in task.corpus.items()]
                        ),
                        queries=Dataset.from_list([{"id": q, "text": t} for q, t in queries.items()]),
                        relevant_docs={q: dict(docs) for q, docs in task.qrels[split].items()},
                        top_ranked=None,
                    )
                }
            }
            self.data_loaded = True

    HarnessRetrieval.metadata = metadata
    return HarnessRetrieval()
