"""Rendering of the leaderboard (`harness.leaderboard` builds the tables): leaderboard.md, leaderboard.csv
and index.html, one self-contained page (no network) with the tables and their plots.

Plots are rendered with matplotlib (Agg) to PNG and embedded as data URIs: per-task bars of the
main score with 95% whiskers, the plot each metric family declares (hierarchy: probe accuracy by
level), and quality against fit time.
"""

from __future__ import annotations

import base64
import html
import io
import re

import pandas as pd

from pathlib import Path

from harness import atomic
from harness.leaderboard import LABEL_SUPERVISED, MIN_SHARED_MISSES, Leaderboard, build
from harness.metrics.rag import BRANCH_TEST_K
from harness.metrics import FAMILIES
from harness.provenance import provenance_markdown
from harness.results import Result, load_results

INTRO = (
    "Main score (nDCG@10 on the test split unless a task says otherwise): mean over seeds and test queries "
    "with its 95% bootstrap interval (seeds and queries resampled), n = seeds. † = differs from `frozen` "
    "(paired two-level bootstrap over seeds and test queries, Holm-Bonferroni adjusted over every comparison "
    "in the table, p < 0.05). Task columns name the profile the number comes from. Regenerate with "
    "`python -m harness table`."
)

STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:1200px;color:#222}
table{border-collapse:collapse;margin:1rem 0;font-size:.85rem}th,td{border:1px solid #ccc;padding:.25rem .5rem}
th{background:#f3f3f3}div.scroll{overflow-x:auto}td.num{text-align:right}img{max-width:100%;margin:.5rem 0}h2{margin-top:2.5rem}
"""


def _figure_uri(figure) -> str:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(figure)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _row_label(row) -> str:
    return f"{row.baseline} ({row.model})"


def main_score_bars(board: Leaderboard, task: str) -> str:
    """Bars of the main score per row with 95% bootstrap whiskers (seeds and queries)."""
    plt = _pyplot()
    rows = board.frame[board.frame.task == task]
    labels, means, lows, highs = [], [], [], []
    for (baseline, key, model, config), group in rows.groupby(["baseline", "baseline_key", "model", "config"]):
        interval = board.intervals[(task, (key, model, config))]
        if interval:
            mean, low, high = interval.mean, interval.low, interval.high
        else:
            mean = low = high = float(group.main_score.mean())
        labels.append(f"{baseline} ({model})")
        means.append(mean), lows.append(mean - low), highs.append(high - mean)
    order = sorted(range(len(means)), key=lambda i: means[i])
    figure, axis = plt.subplots(figsize=(7, 0.45 * len(order) + 1.2))
    axis.barh([labels[i] for i in order], [means[i] for i in order],
              xerr=[[lows[i] for i in order], [highs[i] for i in order]], color="#4c78a8", capsize=3)
    axis.set_xlabel("main score (95% CI)")
    axis.set_title(task)
    return _figure_uri(figure)


def quality_vs_time(frame: pd.DataFrame) -> str:
    """Main score against fit (training) time, one point per row and task."""
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(7, 4.5))
    grouped = frame.groupby(["task", "baseline", "model", "config"])[["main_score", "fit_time_s"]].mean().reset_index()
    for task, rows in grouped.groupby("task"):
        axis.scatter(rows.fit_time_s.clip(lower=0.01), rows.main_score, label=task)
        for row in rows.itertuples():
            axis.annotate(row.baseline, (max(row.fit_time_s, 0.01), row.main_score), fontsize=7, xytext=(3, 2), textcoords="offset points")
    axis.set_xscale("log")
    axis.set_xlabel("fit time (s, log scale)")
    axis.set_ylabel("main score")
    axis.legend(fontsize=8)
    return _figure_uri(figure)


def to_markdown(table: pd.DataFrame, digits: int = 4) -> str:
    index_names = [n or "" for n in table.index.names]
    header = index_names + [str(c) for c in table.columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * len(index_names) + ["---:"] * len(table.columns)) + "|"]
    for index, row in table.iterrows():
        keys = index if isinstance(index, tuple) else (index,)
        cells = [_cell(v, digits) for v in row.tolist()]
        lines.append("| " + " | ".join([str(k) for k in keys] + cells) + " |")
    return "\n".join(lines)


def _cell(value, digits: int) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return "–"
    if isinstance(value, float) and value.is_integer() and abs(value) >= 1:
        return str(int(value))
    if isinstance(value, float):
        return f"{value:.{digits}f}" if abs(value) < 10 else f"{value:.1f}"
    return str(value)


def comparisons_display(tests: pd.DataFrame) -> pd.DataFrame:
    """Paired tests with the reference shown as `baseline (model)` (and the metric, where the table has several)."""
    tests = tests.copy()
    tests.insert(3, "against", tests.against_baseline + " (" + tests.against_model + ")")
    index = ["task", "baseline", "model", "against"] + (["metric"] if "metric" in tests else [])
    return tests.drop(columns=["against_baseline", "against_model"]).set_index(index)


MAIN_TESTS = ("Paired comparisons (main score; p: two-level bootstrap over seeds and test queries; "
              "p_holm: Holm-Bonferroni adjusted over the table)")
ANSWER_TESTS = ("Paired comparisons of generated answers (1 per hallucinated answer, on the sampled test queries "
                "both rows answered, over the seeds with answers; delta < 0: fewer hallucinated answers; "
                "p_holm: Holm-Bonferroni adjusted over this table)")
BRANCH_TESTS = ("Paired comparisons of wrong-branch distractors (per query: the share of its top-" f"{BRANCH_TEST_K} contexts "
                "off every gold branch at level l (the headline levels 1 and 2), over the test queries that every seed of both rows missed, so a row's "
                f"hit rate does not enter; at least {MIN_SHARED_MISSES} such queries; label-supervised rows left out; p: two-level bootstrap over "
                "seeds and those queries; delta < 0: fewer off-branch distractors; p_holm: Holm-Bonferroni adjusted "
                "over this table)")
SEED_TESTS = ("Seed-level comparisons (the hierarchy's whole-path F1, which has no per-query values, and the "
              "wrong-branch rate over each row's own misses; Welch's t-test over per-seed values, rows with at least 3 seeds each, "
              "pairs where neither row varies over seeds and label-supervised rows left out; "
              "p_holm: Holm-Bonferroni adjusted over this table)")


def legends() -> str:
    """What each metric family's section measures, once, and the label-supervised mark."""
    lines = ["## What the sections measure", ""]
    lines += [f"- **{family.title}**: {family.legend}" for family in FAMILIES.values() if family.legend]
    lines += ["- `precision` (each task's first table): what the row's runs computed in, bf16 autocast or fp32, with counts "
              "where its seeds differ (`bf16 2 + fp32 1`). `precision = \"auto\"` resolves to bf16 only on hardware with bf16 "
              "matrix units, so one config can give either; `?` = a result from before runs recorded it."]
    lines += [f"- `{LABEL_SUPERVISED.strip()}` after a baseline in a section scored on curated labels: the row trained on those same "
              "labels (`label_source = \"gold\"`), so its cells there are label-supervised, not comparable with the other rows."]
    lines += ["- `-tuned` rows (`contrastive-tuned`, ...): per task and seed, the run of a baseline or of the settings its "
              "file lists as its dev sweep (`dev_sweep`) with the best dev nDCG@10, chosen on dev alone; a seed counts only "
              "where every candidate ran it. The run is kept whole, so the row repeats one candidate's numbers per seed; it is "
              "tested on the main score only."]
    return "\n".join(lines)


def markdown(board: Leaderboard | None) -> str:
    if board is None:
        return "# Leaderboard\n\nNo results yet: run `python -m harness run`.\n"
    parts = ["# Leaderboard", "", INTRO, "", to_markdown(board.main), "", legends()]
    for title, tests in ((MAIN_TESTS, board.comparisons), (ANSWER_TESTS, board.answer_comparisons),
                         (BRANCH_TESTS, board.branch_comparisons), (SEED_TESTS, board.seed_comparisons)):
        if not tests.empty:
            parts += ["", f"## {title}", "", to_markdown(comparisons_display(tests))]
    current = None
    for task, family, table in board.sections:
        if task != current:
            parts += ["", f"## {task}"]
            current = task
        parts += ["", f"### {family.title}", "", to_markdown(table)]
    return "\n".join(parts) + "\n"


def _table_html(table: pd.DataFrame) -> str:
    body = to_markdown(table).splitlines()
    header, rows = body[0], body[2:]
    cells = lambda line: [c.strip() for c in line.strip("|").split("|")]
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cells(header))
    lines = ['<div class="scroll"><table><thead><tr>' + head + "</tr></thead><tbody>"]
    for line in rows:
        tds = "".join(f'<td class="num">{html.escape(c)}</td>' if re.fullmatch(r"[-–0-9.]+.*", c) else f"<td>{html.escape(c)}</td>"
                      for c in cells(line))
        lines.append(f"<tr>{tds}</tr>")
    return "\n".join(lines) + "</tbody></table></div>"


def _family_plots(board: Leaderboard, task: str) -> list[str]:
    plt = _pyplot()
    images = []
    for family in dict.fromkeys(family for t, family, _ in board.sections if t == task):
        figure = family.plot(board.frame, task, plt) if family.plot else None
        if figure is not None:
            images.append(f'<img alt="{html.escape(family.plot_caption or family.name)} of {html.escape(task)}" src="{_figure_uri(figure)}">')
    return images


def html_report(board: Leaderboard | None) -> str:
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>harness leaderboard</title>",
             f"<style>{STYLE}</style></head><body><h1>Leaderboard</h1>"]
    if board is None:
        return "".join(parts) + "<p>No results yet: run <code>python -m harness run</code>.</p></body></html>\n"
    parts += [f"<p>{html.escape(INTRO)}</p>", _table_html(board.main)]
    legend_lines = legends().splitlines()
    parts += [f"<h2>{html.escape(legend_lines[0].lstrip('# '))}</h2><ul>"]
    parts += [f"<li>{html.escape(line[2:].replace('**', '').replace('`', ''))}</li>" for line in legend_lines[2:]]
    parts += ["</ul>"]
    if not board.comparisons.empty:
        parts += ["<h2>Paired comparisons</h2>", _table_html(comparisons_display(board.comparisons))]
    for title, text, tests in (("Paired comparisons of generated answers", ANSWER_TESTS, board.answer_comparisons),
                               ("Paired comparisons of wrong-branch distractors", BRANCH_TESTS, board.branch_comparisons),
                               ("Seed-level comparisons", SEED_TESTS, board.seed_comparisons)):
        if not tests.empty:
            parts += [f"<h2>{title}</h2>", f"<p>{html.escape(text)}</p>", _table_html(comparisons_display(tests))]
    parts += ["<h2>Quality against training time</h2>", f'<img alt="quality against fit time" src="{quality_vs_time(board.frame)}">']
    current = None
    for task, family, table in board.sections:
        if task != current:
            current = task
            parts += [f"<h2>{html.escape(task)}</h2>", f'<img alt="main score of {html.escape(task)}" src="{main_score_bars(board, task)}">']
            parts += _family_plots(board, task)
        parts += [f"<h3>{html.escape(family.title)}</h3>", _table_html(table)]
    return "\n".join(parts) + "\n</body></html>\n"


def write_leaderboard(results_dir: Path, results: list[Result] | None = None) -> Path:
    """leaderboard.md, leaderboard.csv, index.html and provenance.md (how each result was made) from the results under
    `results_dir`, each written atomically."""
    # Under a lock: a run that finished after we listed the results rewrites the tables after us.
    with atomic.locked(results_dir):
        results = load_results(results_dir) if results is None else results
        board = build(results)
        atomic.write_text(results_dir / "leaderboard.md", markdown(board))
        atomic.write_text(results_dir / "provenance.md", provenance_markdown(results))
        csv = "" if board is None else board.frame.drop(columns=["per_query", "main_metric", "baseline_key"]).sort_values(["task", "baseline", "seed"]).to_csv(index=False)
        atomic.write_text(results_dir / "leaderboard.csv", csv)
        atomic.write_text(results_dir / "index.html", html_report(board))
    return results_dir / "leaderboard.md"
