"""Find a task by name, build its BEIR folder once (cached by source versions), apply a profile."""

from __future__ import annotations

import hashlib
import json
import re
import sys
from dataclasses import replace
from pathlib import Path

from harness import atomic
from harness.builders.common import file_checksums, seeded_order
from harness.packages import package_version
from harness.errors import HarnessError
from harness.paths import TASK_CARDS_DIR, data_dir
from harness.registry import Registry, import_target
from harness.synthetic_queries import synthetic_metadata
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
    """The card's built BEIR folder; built now if it is missing or its files differ from build_info.json
    (the folder is a cache, so a changed file is rebuilt rather than trusted or reported as provenance)."""
    folder = data_dir() / card.name / build_key(card)
    problem = build_mismatch(folder)
    if problem is None:
        return folder
    if folder.exists():
        print(f"[harness] built task folder {folder} does not match its build_info.json ({problem}); rebuilding",
              file=sys.stderr, flush=True)
        atomic.discard(folder)
    _build(card, folder)
    return folder


def build_mismatch(folder: Path) -> str | None:
    """Why a built folder cannot be trusted, or None when every file matches the checksums recorded at build."""
    try:
        recorded = dict(json.loads((folder / "build_info.json").read_text(encoding="utf-8"))["checksums"])
    except FileNotFoundError:
        return "no build_info.json"
    except (ValueError, KeyError, TypeError):
        return "unreadable build_info.json"
    # sha256 of every file each run: 9-13 ms on healthcare, the largest built-in task (15 MB), so no stat cache
    actual = file_checksums(folder)
    differing = sorted(name for name in recorded.keys() | actual.keys() if recorded.get(name) != actual.get(name))
    return ", ".join(f"{name} {_difference(name, recorded, actual)}" for name in differing) or None


def _difference(name: str, recorded: dict[str, str], actual: dict[str, str]) -> str:
    return "missing" if name not in actual else "unexpected" if name not in recorded else "changed"


def _build(card: TaskCard, folder: Path) -> None:
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


def load_task(name: str | None = None, task_dir: Path | None = None, profile: str = "small",
              task_name: str | None = None) -> Task:
    """A built-in or plugin task by name, or any BEIR folder (`task_dir`, no profile caps; see `load_folder_task`)."""
    if task_dir is not None:
        return load_folder_task(Path(task_dir), task_name)
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


# A folder task's name is one path component under --out, never `..`, `.` or empty.
TASK_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def load_folder_task(folder: Path, task_name: str | None = None) -> Task:
    """A user's BEIR folder as a task named `task_name` (default: the resolved folder's name). Its profile is
    `full-<first 8 hex of folder_revision>`, so the result files of an edited folder, or of another folder
    of the same name, are other files: they are run, not skipped as done."""
    name = check_task_name(task_name) if task_name is not None else folder_task_name(folder)
    revision = folder_revision(folder)
    metadata = {"source": str(folder.resolve()), "revision": revision, **synthetic_metadata(folder)}
    task = load_task_folder(folder, name=name, metadata=metadata)
    return replace(task, profile=f"full-{revision[:8]}")


def check_task_name(name: str) -> str:
    """`name` if it is a safe task name: a letter or digit, then letters, digits, '.', '_' or '-', and no '..'."""
    if TASK_NAME.fullmatch(name) and ".." not in name:
        return name
    raise HarnessError(f"task name {name!r} must start with a letter or digit and contain only letters, digits, "
                       "'.', '_' and '-' (no '..')")


def folder_task_name(folder: Path) -> str:
    """The resolved folder's name made a valid task name (`x/qrels/..` -> `x`, `.` -> the working directory's name)."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", Path(folder).resolve().name)
    return re.sub(r"\.{2,}", ".", name).lstrip("._-") or "task"


def folder_revision(folder: Path) -> str:
    """sha256 (hex) over the names, sizes and bytes of corpus.jsonl, queries.jsonl and qrels/*.tsv: any edit changes it."""
    digest = hashlib.sha256()
    for file in [folder / "corpus.jsonl", folder / "queries.jsonl", *sorted((folder / "qrels").glob("*.tsv"))]:
        if not file.is_file():
            continue  # the loader reports a missing file, with its path
        digest.update(f"{file.relative_to(folder).as_posix()}\0{file.stat().st_size}\0".encode())
        with file.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def check_profile(name: str, profile: str) -> None:
    """A profile asked for by name must exist for the task ('full' always does): a typo is an error, not the full task."""
    known = dict.fromkeys(["full", *resolve_card(name).profiles])
    if profile not in known:
        raise HarnessError(f"task {name!r}: " + Registry("profile", "harness.profiles", known).unknown_message(profile))
