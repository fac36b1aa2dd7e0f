"""results/index.html: one self-contained page (no network) with the leaderboard and its plots.

Plots are rendered with matplotlib (Agg) to PNG and embedded as data URIs: per-task bars of the
main score with 95% whiskers, per-level hierarchical probe accuracy lines, and quality against
fit time.
"""

from __future__ import annotations

import base64
import html
import io
import re

import pandas as pd

from harness.leaderboard import INTRO, Leaderboard, to_markdown
from harness.stats import bootstrap_interval

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


def main_score_bars(frame: pd.DataFrame, task: str) -> str:
    """Bars of the main score per row with 95% bootstrap whiskers (seeds and queries)."""
    plt = _pyplot()
    rows = frame[frame.task == task]
    labels, means, lows, highs = [], [], [], []
    for (baseline, model, config), group in rows.groupby(["baseline", "model", "config"]):
        per_seed = [p for p in group.per_query if p]
        if per_seed:
            interval = bootstrap_interval(per_seed)
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


def hierarchy_lines(frame: pd.DataFrame, task: str) -> str | None:
    """Probe accuracy per hierarchy level, one line per row (documents and queries)."""
    rows = frame[frame.task == task]
    columns = sorted(c for c in rows.columns if re.fullmatch(r"hier_l\d+_(doc|query)_accuracy", c) and rows[c].notna().any())
    if not columns:
        return None
    plt = _pyplot()
    figure, axes = plt.subplots(1, 2, figsize=(10, 3.5), sharey=True)
    for axis, modality in zip(axes, ("doc", "query")):
        level_columns = [c for c in columns if f"_{modality}_" in c]
        levels = [int(re.search(r"l(\d+)", c).group(1)) for c in level_columns]
        for (baseline, model, _), group in rows.groupby(["baseline", "model", "config"]):
            values = group[level_columns].mean()
            if values.notna().any():
                axis.plot(levels, values.values, marker="o", label=f"{baseline} ({model})")
        axis.set_title(f"{task}: {modality} probe accuracy by level")
        axis.set_xlabel("level (1 = root)")
        axis.set_xticks(levels or [1])
    axes[0].set_ylabel("accuracy")
    axes[1].legend(fontsize=7, loc="best")
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


def html_report(board: Leaderboard | None) -> str:
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>harness leaderboard</title>",
             f"<style>{STYLE}</style></head><body><h1>Leaderboard</h1>"]
    if board is None:
        return "".join(parts) + "<p>No results yet: run <code>python -m harness run</code>.</p></body></html>\n"
    parts += [f"<p>{html.escape(INTRO)}</p>", _table_html(board.main)]
    if not board.comparisons.empty:
        parts += ["<h2>Paired comparisons</h2>", _table_html(board.comparisons.set_index(["task", "baseline", "model", "against"]))]
    parts += ["<h2>Quality against training time</h2>", f'<img alt="quality against fit time" src="{quality_vs_time(board.frame)}">']
    current = None
    for task, title, table in board.sections:
        if task != current:
            current = task
            parts += [f"<h2>{html.escape(task)}</h2>", f'<img alt="main score of {html.escape(task)}" src="{main_score_bars(board.frame, task)}">']
            lines = hierarchy_lines(board.frame, task)
            if lines:
                parts.append(f'<img alt="hierarchy levels of {html.escape(task)}" src="{lines}">')
        parts += [f"<h3>{html.escape(title)}</h3>", _table_html(table)]
    return "\n".join(parts) + "\n</body></html>\n"
