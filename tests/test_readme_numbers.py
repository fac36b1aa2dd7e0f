"""README's leaderboard excerpt is the committed leaderboard: each number, seed mark and † is read back from
results/leaderboard.csv and the main paired-comparison table, and each Holm family size README quotes from its
table, so new results cannot leave README stale."""

from __future__ import annotations

import csv
import re
from collections import defaultdict
from statistics import fmean

from harness.paths import CHECKOUT_ROOT

EXCERPT_HEADER = "| baseline | cyber | healthcare |"
MAIN_SECTION = "## Paired comparisons (main score"
UNTRAINED = " (untrained: step 0 selected)"
SEED_MARKS = {1: "¹", 2: "⁴"}  # no mark: three seeds
EXCERPT_LEGEND_START = "Excerpt of the committed results"
EXCERPT_MARKS = "¹²³⁴†"  # seed, untrained and significance marks the legend must explain


def excerpt_rows(readme: str) -> tuple[list[str], list[list[str]]]:
    lines = readme[readme.index(EXCERPT_HEADER):].split("\n\n")[0].splitlines()
    tasks = [cell.strip() for cell in lines[0].strip("|").split("|")][1:]
    return tasks, [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[2:]]


def seed_scores() -> dict[tuple[str, str], list[tuple[float, bool]]]:
    """(task, baseline) -> (main score, untrained) per seed; the csv names an untrained seed's row apart."""
    scores: dict[tuple[str, str], list[tuple[float, bool]]] = defaultdict(list)
    with open(CHECKOUT_ROOT / "results" / "leaderboard.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            baseline, untrained = row["baseline"].removesuffix(UNTRAINED), row["baseline"].endswith(UNTRAINED)
            scores[row["task"], baseline].append((float(row["main_score"]), untrained))
    return scores


def comparison_rows(board: str, section_start: str) -> list[dict[str, str]]:
    section = board[board.index(section_start):].split("\n## ")[0]
    lines = [line for line in section.splitlines() if line.startswith("| ")]
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    return [dict(zip(header, (cell.strip() for cell in line.strip("|").split("|")))) for line in lines[1:]]


def test_readme_excerpt_numbers_marks_and_daggers_match_the_committed_leaderboard():
    readme = (CHECKOUT_ROOT / "README.md").read_text()
    board = (CHECKOUT_ROOT / "results" / "leaderboard.md").read_text()
    scores, comparisons = seed_scores(), comparison_rows(board, MAIN_SECTION)
    beats_frozen = {(c["task"], c["baseline"]) for c in comparisons
                    if c["against"] == "frozen (minilm)" and c["significant"] == "yes"}
    tasks, rows = excerpt_rows(readme)
    checked, wrong = 0, []
    for row in rows:
        baseline = row[0].split()[0]
        for task, cell in zip(tasks, row[1:]):
            if not cell:
                continue
            key = (f"{task} (small)", baseline)
            seeds = scores.get(key)
            if seeds is None:
                wrong.append(f"{key}: in README, not in leaderboard.csv")
                continue
            number, mean = re.match(r"[0-9.]+", cell).group(), fmean(score for score, _ in seeds)
            if number != f"{mean:.3f}":
                wrong.append(f"{key}: README {number}, results {mean:.3f} over {len(seeds)} seeds")
            marked = next((count for count, mark in SEED_MARKS.items() if mark in cell), 3)
            if marked != len(seeds):
                wrong.append(f"{key}: README marks {marked} seeds, results have {len(seeds)}")
            untrained = sum(flag for _, flag in seeds)
            if ("²" in cell) != (untrained == len(seeds)) or ("³" in cell) != (0 < untrained < len(seeds)):
                wrong.append(f"{key}: README's untrained mark {cell!r}, {untrained} of {len(seeds)} seeds kept step 0")
            if ("†" in cell) != (key in beats_frozen):
                wrong.append(f"{key}: README † {'†' in cell}, leaderboard significant vs frozen {key in beats_frozen}")
            checked += 1
    assert checked > 50 and not wrong, "\n".join(wrong)


def test_readme_excerpt_legend_explains_exactly_the_marks_its_cells_use():
    readme = (CHECKOUT_ROOT / "README.md").read_text()
    legend = readme[readme.index(EXCERPT_LEGEND_START):readme.index(EXCERPT_HEADER)]
    _, rows = excerpt_rows(readme)
    used = {mark for row in rows for cell in row[1:] for mark in EXCERPT_MARKS if mark in cell}
    explained = {mark for mark in EXCERPT_MARKS if re.search(f"{mark} [a-z]", legend)}
    assert used, "no marks read from the excerpt: the parser no longer finds the cells"
    assert used <= explained, f"marks used in the excerpt but not explained above it: {sorted(used - explained)}"
    assert explained <= used, f"legend entries no cell uses any more: {sorted(explained - used)}"


# README's wording for each comparison table's Holm family size -> the table's section heading
QUOTED_FAMILY_SIZES = {
    r"adjusted over all (\d+) comparisons of the leaderboard": MAIN_SECTION,
    r"Holm over the (\d+)\s+seed-level tests": "## Seed-level comparisons",
    r"in the leaderboard, (\d+) tests under Holm": "## Paired comparisons of wrong-branch distractors",
    r"Holm–Bonferroni over that table's (\d+)": "## Paired comparisons of generated answers",
}


def test_readme_quotes_the_number_of_comparisons_each_holm_correction_runs_over():
    readme = (CHECKOUT_ROOT / "README.md").read_text()
    board = (CHECKOUT_ROOT / "results" / "leaderboard.md").read_text()
    wrong = []
    for wording, section in QUOTED_FAMILY_SIZES.items():
        quoted = [int(number) for number in re.findall(wording, readme)]
        rows = len(comparison_rows(board, section))
        if not quoted or any(number != rows for number in quoted):
            wrong.append(f"README quotes {quoted or 'nothing'} for {section!r}, the table has {rows} rows")
    assert not wrong, "\n".join(wrong)


def test_every_test_readme_names_exists():
    """README's guarantees name the tests that check them (`file.py::test`, `::test` for the file named before):
    a renamed or deleted test must not leave a guarantee pointing at nothing."""
    readme = (CHECKOUT_ROOT / "README.md").read_text(encoding="utf-8")
    named, missing, current = 0, [], None
    for file, test in re.findall(r"(?:tests/)?(test_\w+\.py)|::(test_\w+)", readme):
        if file:
            current = file
            missing += [] if (CHECKOUT_ROOT / "tests" / file).exists() else [file]
            continue
        named += 1
        source = (CHECKOUT_ROOT / "tests" / current).read_text(encoding="utf-8") if current else ""
        if not re.search(rf"^def {test}\(", source, re.MULTILINE):
            missing.append(f"{current}::{test}")
    assert named >= 10, f"only {named} test names found in README"
    assert not missing, f"README names tests that do not exist: {missing}"
