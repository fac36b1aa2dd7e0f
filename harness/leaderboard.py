"""results/*.json -> leaderboard.md and leaderboard.csv (rows: baselines; columns: tasks' main score and the mean)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from harness import atomic
from harness.results import Result, load_results

DETAIL_METRICS = ("ndcg_at_10", "mrr_at_10", "recall_at_10", "recall_at_100", "map_at_10", "hit_rate_at_1")


def results_frame(results: list[Result]) -> pd.DataFrame:
    rows = []
    for r in results:
        rows.append({
            "task": f"{r.key.task} ({r.key.profile})",
            "baseline": r.key.baseline,
            "model": r.key.model,
            "config": r.key.config_hash,
            "seed": r.key.seed,
            "main_score": r.scores[r.main_score],
            "fit_time_s": r.run_info.get("fit_time_s"),
            "eval_time_s": r.evaluation_time,
            **{m: r.scores.get(m) for m in DETAIL_METRICS},
        })
    return pd.DataFrame(rows)


def main_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Mean main score over seeds per (baseline, model, config) and task, plus the mean over tasks."""
    table = frame.pivot_table(index=["baseline", "model", "config"], columns="task", values="main_score", aggfunc="mean")
    table["mean"] = table.mean(axis=1, skipna=False)
    return table.sort_values("mean", ascending=False, na_position="last")


def task_table(frame: pd.DataFrame, task: str) -> pd.DataFrame:
    rows = frame[frame.task == task]
    grouped = rows.groupby(["baseline", "model", "config"])
    table = grouped[list(DETAIL_METRICS) + ["fit_time_s", "eval_time_s"]].mean()
    table.insert(0, "seeds", grouped.size())
    return table.sort_values("ndcg_at_10", ascending=False)


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


def render(results: list[Result]) -> tuple[str, str]:
    """(markdown, csv) for a set of results."""
    frame = results_frame(results)
    if frame.empty:
        return "# Leaderboard\n\nNo results yet: run `python -m harness run`.\n", ""
    table = main_table(frame)
    parts = [
        "# Leaderboard",
        "",
        "Main score (nDCG@10 on the test split unless a task says otherwise), mean over seeds. "
        "Task columns name the profile the number comes from. Regenerate with `python -m harness table`.",
        "",
        to_markdown(table),
    ]
    for task in sorted(frame.task.unique()):
        parts += ["", f"## {task}", "", to_markdown(task_table(frame, task))]
    return "\n".join(parts) + "\n", frame.sort_values(["task", "baseline", "seed"]).to_csv(index=False)


def write_leaderboard(results_dir: Path) -> Path:
    markdown, csv = render(load_results(results_dir))
    atomic.write_text(results_dir / "leaderboard.md", markdown)
    atomic.write_text(results_dir / "leaderboard.csv", csv)
    return results_dir / "leaderboard.md"
