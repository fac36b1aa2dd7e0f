"""Data cards: a Markdown page per task (tasks/<name>.md) rendered from its card and its built folder.

    python -m harness.datacard            # every task
    python -m harness.datacard math cyber # some

The page states source and version, licence and notice, counts per split, document lengths, the
label hierarchy, three test queries with their relevant documents, the checksums of the built
files and the known biases written in the card. It has no timestamp, so it only changes when the
data does.
"""

from __future__ import annotations

import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path

from harness import atomic
from harness.builders.common import seeded_order
from harness.catalog import TASKS, ensure_built, resolve_card
from harness.errors import HarnessError
from harness.paths import TASK_CARDS_DIR
from harness.task import SPLITS, Task, load_task_folder
from harness.taskcard import TaskCard

EXAMPLE_QUERIES = 3
EXAMPLE_DOCS = 3
EXCERPT_WORDS = 30


def _excerpt(text: str, words: int = EXCERPT_WORDS) -> str:
    parts = text.split()
    return " ".join(parts[:words]) + (" ..." if len(parts) > words else "")


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _sources(card: TaskCard, build: dict) -> str:
    built = build.get("sources", {})
    parts = []
    for dist, pinned in sorted(card.sources.items()):
        used = built.get(dist, pinned)
        parts.append(f"`{dist}=={used}`" + ("" if used == pinned else f" (the card pins {pinned})"))
    return ", ".join(parts) or "none"


def _overview(card: TaskCard, build: dict) -> list[str]:
    rows = [
        ("Domain", card.domain),
        ("Source packages", _sources(card, build)),
        ("Builder", f"`{card.builder}` v{card.builder_version}"),
        ("Licence", card.license or "not stated"),
        ("Main score", f"`{card.main_score}`"),
        ("MTEB domains", ", ".join(card.mteb_domains) or "none"),
        ("Splits", f"seed {card.split_seed}, dev {card.n_dev}, test {card.n_test}, the rest train"),
    ]
    return ["| | |", "|---|---|", *(f"| {key} | {_cell(value)} |" for key, value in rows)]


def _split_table(task: Task) -> list[str]:
    lines = ["| split | queries | qrels | relevant docs per query | words per query |", "|---|---:|---:|---:|---:|"]
    for split in SPLITS:
        pairs = task.qrels.get(split)
        if not pairs:
            continue
        qrels = sum(len(docs) for docs in pairs.values())
        words = statistics.mean(len(task.queries[q].split()) for q in pairs)
        lines.append(f"| {split} | {len(pairs)} | {qrels} | {qrels / len(pairs):.2f} (max {max(map(len, pairs.values()))}) | {words:.1f} |")
    return lines


def _document_lengths(task: Task) -> str:
    words = sorted(len(doc.full_text.split()) for doc in task.corpus.values())
    return (
        f"{len(words)} documents; words per document (title and text): mean {statistics.mean(words):.1f}, "
        f"median {statistics.median(words):g}, min {words[0]}, max {words[-1]}."
    )


def hierarchy_levels(task: Task) -> list[dict]:
    """Per level: distinct labels, and how many children each label of the level above has."""
    depth = max((len(doc.labels) for doc in task.corpus.values()), default=0)
    levels = []
    for level in range(depth):
        children: dict[tuple, set] = defaultdict(set)
        for doc in task.corpus.values():
            if len(doc.labels) > level:
                children[doc.labels[:level]].add(doc.labels[: level + 1])
        counts = [len(c) for c in children.values()]
        levels.append({
            "labels": sum(counts),
            "branching_mean": statistics.mean(counts),
            "branching_max": max(counts),
            "documents": sum(len(doc.labels) > level for doc in task.corpus.values()),
        })
    return levels


def _hierarchy(task: Task, card: TaskCard) -> list[str]:
    depths = sorted({len(doc.labels) for doc in task.corpus.values()})
    fixed = f"fixed at {depths[0]}" if len(depths) == 1 else f"{depths[0]} to {depths[-1]}"
    lines = [f"Label path depth: {fixed}.", "", "| level | name | labels | children per parent (mean / max) | documents |", "|---|---|---:|---:|---:|"]
    for number, level in enumerate(hierarchy_levels(task), start=1):
        name = card.label_levels[number - 1] if number <= len(card.label_levels) else ""
        lines.append(f"| {number} | {name} | {level['labels']} | {level['branching_mean']:.1f} / {level['branching_max']} | {level['documents']} |")
    return lines


def _examples(task: Task, seed: int) -> list[str]:
    pairs = task.qrels.get("test", {})
    lines = []
    for qid in seeded_order(pairs, seed)[:EXAMPLE_QUERIES]:
        relevant = sorted(pairs[qid], key=lambda d: (-pairs[qid][d], d))
        lines.append(f"- **{_cell(task.queries[qid])}** (`{qid}`, {len(relevant)} relevant)")
        for doc_id in relevant[:EXAMPLE_DOCS]:
            doc = task.corpus[doc_id]
            path = " > ".join(doc.labels)
            lines.append(f"  - `{doc_id}` {_cell(doc.title)} [{_cell(path)}]: {_cell(_excerpt(doc.text))}")
        if len(relevant) > EXAMPLE_DOCS:
            lines.append(f"  - ... and {len(relevant) - EXAMPLE_DOCS} more")
    return lines


def _checksums(build: dict) -> list[str]:
    lines = ["| file | sha256 |", "|---|---|"]
    return lines + [f"| `{name}` | `{digest}` |" for name, digest in sorted(build.get("checksums", {}).items())]


def _paragraph(text: str) -> str:
    return " ".join(text.split())


def render_data_card(card: TaskCard, folder: Path) -> str:
    """The Markdown data card of a task whose built BEIR folder is `folder`."""
    build = json.loads((folder / "build_info.json").read_text(encoding="utf-8"))
    task = load_task_folder(folder, name=card.name, label_depth=card.label_depth)
    parts = [f"# Data card: {card.name}", "", card.description, "", *_overview(card, build)]
    if card.notice:
        parts += ["", "## Required notice", "", f"> {card.notice}"]
    if card.citation:
        parts += ["", "## Citation", "", _paragraph(card.citation)]
    if card.build_notes:
        parts += ["", "## How it is built", "", _paragraph(card.build_notes)]
    parts += ["", "## Size", "", _document_lengths(task), "", *_split_table(task)]
    parts += ["", "## Hierarchy", "", *_hierarchy(task, card)]
    parts += ["", "## Example test queries", "", *_examples(task, card.split_seed)]
    parts += ["", "## Known biases", "", _paragraph(card.biases) if card.biases else "None recorded in the task card."]
    parts += ["", "## Checksums of the built files", "", *_checksums(build)]
    return "\n".join(parts) + "\n"


def write_data_card(name: str, out_dir: Path = TASK_CARDS_DIR) -> Path:
    """Build the task if needed and write `<out_dir>/<name>.md`."""
    card = resolve_card(name)
    path = Path(out_dir) / f"{card.name}.md"
    atomic.write_text(path, render_data_card(card, ensure_built(card)))
    return path


def main(argv: list[str] | None = None) -> int:
    names = (sys.argv[1:] if argv is None else argv) or TASKS.names()
    try:
        for name in names:
            print(write_data_card(name))
    except HarnessError as exc:
        print(f"harness.datacard: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
