"""Find a task by name, build its BEIR folder once (cached by source versions), apply a profile."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path

from harness import atomic
from harness.builders.common import file_checksums, package_version, seeded_order
from harness.errors import HarnessError
from harness.paths import TASK_CARDS_DIR, data_dir
from harness.registry import Registry, import_target
from harness.task import Task, load_task_folder
from harness.taskcard import Profile, TaskCard, load_card

TASKS = Registry("task", "harness.tasks", {p.stem: p for p in sorted(TASK_CARDS_DIR.glob("*.toml"))})


def resolve_card(name: str) -> TaskCard:
    """A task name -> its card; plugins may register a card path, a TaskCard, or a callable returning one."""
    target = TASKS.get(name)
    if callable(target) and not isinstance(target, TaskCard):
        target = target()
    card = load_card(Path(target)) if isinstance(target, (str, Path)) else target
    if not isinstance(card, TaskCard):
        raise HarnessError(f"task {name!r} does not resolve to a task card")
    return card


def build_key(card: TaskCard) -> str:
    """Changes when the builder, an installed source package, or the split parameters change."""
    spec = {
        "builder": card.builder,
        "builder_version": card.builder_version,
        "sources": {dist: package_version(dist) for dist in sorted(card.sources)},
        "splits": [card.split_seed, card.n_dev, card.n_test],
    }
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]


def ensure_built(card: TaskCard) -> Path:
    folder = data_dir() / card.name / build_key(card)
    if (folder / "build_info.json").exists():
        return folder
    with atomic.directory(folder) as scratch:
        import_target(card.builder)(scratch, seed=card.split_seed, n_dev=card.n_dev, n_test=card.n_test)
        info = {
            "task": card.name,
            "builder": card.builder,
            "builder_version": card.builder_version,
            "sources": {dist: package_version(dist) for dist in sorted(card.sources)},
            "checksums": file_checksums(scratch),
        }
        (scratch / "build_info.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    return folder


def apply_profile(task: Task, profile: Profile, seed: int = 0) -> Task:
    """Cap queries per split and the corpus; documents relevant to a kept test or dev query always stay."""
    caps = {"test": profile.max_test_queries, "dev": profile.max_dev_queries, "train": profile.max_train_queries}
    qrels = {}
    for split, pairs in task.qrels.items():
        cap = caps.get(split)
        kept = seeded_order(pairs, seed)[:cap] if cap else list(pairs)
        qrels[split] = {qid: pairs[qid] for qid in sorted(kept)}
    corpus = task.corpus
    if profile.max_corpus and len(corpus) > profile.max_corpus:
        needed = {d for split in ("test", "dev") for docs in qrels.get(split, {}).values() for d in docs}
        others = [d for d in seeded_order(corpus, seed) if d not in needed]
        keep = needed | set(others[: max(0, profile.max_corpus - len(needed))])
        corpus = {d: doc for d, doc in corpus.items() if d in keep}
        qrels = {
            split: {q: {d: r for d, r in docs.items() if d in keep} for q, docs in pairs.items()}
            for split, pairs in qrels.items()
        }
        qrels = {split: {q: docs for q, docs in pairs.items() if docs} for split, pairs in qrels.items()}
    kept_queries = {q for pairs in qrels.values() for q in pairs}
    queries = {q: t for q, t in task.queries.items() if q in kept_queries}
    return replace(task, corpus=corpus, queries=queries, qrels=qrels)


def load_task(name: str | None = None, task_dir: Path | None = None, profile: str = "small") -> Task:
    """A built-in or plugin task by name, or any BEIR folder (`task_dir`, no profile caps)."""
    if task_dir is not None:
        task = load_task_folder(Path(task_dir), metadata={"source": str(task_dir)})
        return replace(task, profile="full")
    card = resolve_card(name)
    folder = ensure_built(card)
    build_info = json.loads((folder / "build_info.json").read_text(encoding="utf-8"))
    task = load_task_folder(
        folder,
        name=card.name,
        main_score=card.main_score,
        label_depth=card.label_depth,
        metadata={"domain": card.domain, "build": build_info, "label_levels": list(card.label_levels)},
    )
    profile_name = profile if profile in card.profiles else "full"
    return replace(apply_profile(task, card.profile(profile_name)), profile=profile_name)
