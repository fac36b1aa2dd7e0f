"""results/*.json -> leaderboard.md and leaderboard.csv (rows: baselines; columns: tasks' main score and the mean)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from harness import atomic
from harness.results import Result, load_results
from harness.stats import bootstrap_interval, mean_score, paired_permutation_p

# Paired comparisons the leaderboard tests, by method: every method against `frozen`, the two
# papers' methods against the baseline each argues against, and every ablation (a baseline named
# differently from its method, e.g. heal-gold) against the baseline named like its method (heal).
REFERENCES = {"heal": "contrastive", "lbr": "llm-cl"}
SIGNIFICANCE = 0.05

DETAIL_METRICS = ("ndcg_at_10", "mrr_at_10", "recall_at_10", "recall_at_100", "map_at_10", "hit_rate_at_1")
HIERARCHY_TITLE = "Hierarchical classification (curated labels; l1 = root level)"
RAG_TITLE = "RAG hallucination proxies (from the retrieval run)"
# One section per metric family; a column appears when some result of the task has it.
FAMILIES = {
    HIERARCHY_TITLE: (
        "hier_l1_doc_accuracy", "hier_l2_doc_accuracy", "hier_l2_doc_macro_f1", "hier_l3_doc_accuracy",
        "hier_path_doc_f1", "hier_path_doc_consistency", "hier_l1_query_accuracy", "hier_l2_query_accuracy",
        "hier_path_query_f1", "hier_l1_doc_v_measure", "hier_l2_doc_v_measure",
    ),
    RAG_TITLE: (
        "gold_context_hit_rate_at_1", "gold_context_hit_rate_at_5", "context_precision_at_5",
        "context_precision_at_10", "wrong_branch_rate_l1_at_5", "wrong_branch_rate_l2_at_5",
        "wrong_branch_rate_l1_at_5_on_miss",
    ),
}
# Generator-based proxies (opt-in `--generator`) carry k in their names: matched by prefix.
GENERATED_PREFIXES = ("answer_support_", "unsupported_sentence_rate_", "answer_empty_rate_")


def results_frame(results: list[Result]) -> pd.DataFrame:
    rows = []
    for r in results:
        rows.append({
            "task": f"{r.key.task} ({r.key.profile})",
            "baseline": r.key.baseline,
            "model": r.key.model,
            "config": r.key.config_hash,
            "seed": r.key.seed,
            "method": r.run_info.get("method", r.key.baseline),
            "main_score": r.scores[r.main_score],
            "per_query": r.per_query,
            "fit_time_s": r.run_info.get("fit_time_s"),
            "eval_time_s": r.evaluation_time,
            **r.scores,
        })
    return pd.DataFrame(rows)


def _groups(results: list[Result]) -> dict[tuple, list[Result]]:
    groups: dict[tuple, list[Result]] = {}
    for r in results:
        groups.setdefault((f"{r.key.task} ({r.key.profile})", r.key.baseline, r.key.model, r.key.config_hash), []).append(r)
    return groups


def comparisons(results: list[Result]) -> pd.DataFrame:
    """Paired permutation tests over test queries: each row against frozen, heal against contrastive,
    lbr against llm-cl, and each ablation against its method's own baseline."""
    groups = _groups(results)
    rows = []
    for (task, baseline, model, config), runs in sorted(groups.items()):
        method = runs[0].run_info.get("method", baseline)
        references = {"frozen", REFERENCES.get(method)} - {None, method}
        if baseline != method:
            references.add(method)  # an ablation against the baseline it varies
        for reference_method in sorted(references):
            candidates = [(k, v) for k, v in groups.items() if k[0] == task and v[0].run_info.get("method", k[1]) == reference_method
                          and k[1] == reference_method]
            if not candidates or not all(r.per_query for r in runs + candidates[0][1]):
                continue
            (_, ref_baseline, ref_model, _), ref_runs = sorted(candidates, key=lambda kv: kv[0][2] != model)[0]
            system = [r.per_query for r in runs]
            reference = [r.per_query for r in ref_runs]
            delta = mean_score(system) - mean_score(reference)
            p = paired_permutation_p(system, reference)
            rows.append({"task": task, "baseline": baseline, "model": model, "against": f"{ref_baseline} ({ref_model})",
                         "delta": delta, "p_value": p, "significant": "yes" if p < SIGNIFICANCE else "no"})
    return pd.DataFrame(rows)


def interval_table(results: list[Result], significant: set[tuple]) -> pd.DataFrame:
    """Main score mean [95% CI over seeds and queries] per row and task; † = differs from frozen (p < 0.05)."""
    cells: dict[tuple, dict[str, str]] = {}
    means: dict[tuple, list[float]] = {}
    for (task, baseline, model, config), runs in _groups(results).items():
        row = (baseline, model, config)
        if all(r.per_query for r in runs):
            interval = bootstrap_interval([r.per_query for r in runs])
            text = f"{interval.mean:.4f} [{interval.low:.3f}, {interval.high:.3f}]"
        else:
            interval = None
            text = f"{sum(r.scores[r.main_score] for r in runs) / len(runs):.4f}"
        mark = " †" if (task, baseline, model, "frozen") in significant else ""
        cells.setdefault(row, {})[task] = f"{text}{mark} (n={len(runs)})"
        means.setdefault(row, []).append(interval.mean if interval else sum(r.scores[r.main_score] for r in runs) / len(runs))
    table = pd.DataFrame.from_dict(cells, orient="index")
    table.index = pd.MultiIndex.from_tuples(table.index, names=["baseline", "model", "config"])
    table = table[sorted(table.columns)]
    n_tasks = len(table.columns)
    table["mean"] = [f"{sum(v) / len(v):.4f}" if len(v) == n_tasks else "–" for v in (means[i] for i in table.index)]
    order = sorted(table.index, key=lambda i: -sum(means[i]) / len(means[i]) if len(means[i]) == n_tasks else 1.0)
    return table.loc[order]


def task_table(frame: pd.DataFrame, task: str) -> pd.DataFrame:
    rows = frame[frame.task == task]
    grouped = rows.groupby(["baseline", "model", "config"])
    table = grouped[list(DETAIL_METRICS) + ["fit_time_s", "eval_time_s"]].mean()
    table.insert(0, "seeds", grouped.size())
    return table.sort_values("ndcg_at_10", ascending=False)


def family_table(frame: pd.DataFrame, task: str, metrics: tuple[str, ...]) -> pd.DataFrame | None:
    rows = frame[frame.task == task]
    if metrics == FAMILIES[RAG_TITLE]:
        metrics = metrics + tuple(sorted(c for c in frame.columns if c.startswith(GENERATED_PREFIXES)))
    present = [m for m in metrics if m in rows and rows[m].notna().any()]
    if not present:
        return None
    table = rows.groupby(["baseline", "model", "config"])[present].mean()
    return table.sort_values(present[0], ascending=False)


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


INTRO = (
    "Main score (nDCG@10 on the test split unless a task says otherwise): mean over seeds and test queries "
    "with its 95% bootstrap interval (seeds and queries resampled), n = seeds. † = differs from `frozen` "
    "(paired permutation test over test queries, p < 0.05). Task columns name the profile the number comes "
    "from. Regenerate with `python -m harness table`."
)
RETRIEVAL_TITLE = "Retrieval"


@dataclass
class Leaderboard:
    """Every table of the leaderboard, computed once, rendered as Markdown, CSV and HTML."""

    frame: pd.DataFrame
    main: pd.DataFrame
    comparisons: pd.DataFrame
    sections: list[tuple[str, str, pd.DataFrame]]  # (task, family title, table)


def build(results: list[Result]) -> Leaderboard | None:
    frame = results_frame(results)
    if frame.empty:
        return None
    tests = comparisons(results)
    significant = set()
    if not tests.empty:
        significant = {(r.task, r.baseline, r.model, r.against.split(" ")[0]) for r in tests.itertuples() if r.significant == "yes"}
    sections = []
    for task in sorted(frame.task.unique()):
        sections.append((task, RETRIEVAL_TITLE, task_table(frame, task)))
        for title, metrics in FAMILIES.items():
            table = family_table(frame, task, metrics)
            if table is not None:
                sections.append((task, title, table))
    return Leaderboard(frame, interval_table(results, significant), tests, sections)


def markdown(board: Leaderboard | None) -> str:
    if board is None:
        return "# Leaderboard\n\nNo results yet: run `python -m harness run`.\n"
    parts = ["# Leaderboard", "", INTRO, "", to_markdown(board.main)]
    if not board.comparisons.empty:
        parts += ["", "## Paired comparisons (main score, test queries, mean over seeds)", "",
                  to_markdown(board.comparisons.set_index(["task", "baseline", "model", "against"]))]
    current = None
    for task, title, table in board.sections:
        if task != current:
            parts += ["", f"## {task}"]
            current = task
        parts += ["", f"### {title}", "", to_markdown(table)]
    return "\n".join(parts) + "\n"


def write_leaderboard(results_dir: Path) -> Path:
    """leaderboard.md, leaderboard.csv and the HTML report index.html, each written atomically."""
    from harness.report import html_report

    # Under a lock: a run that finished after we listed the results rewrites the tables after us.
    with atomic.locked(results_dir):
        board = build(load_results(results_dir))
        atomic.write_text(results_dir / "leaderboard.md", markdown(board))
        csv = "" if board is None else board.frame.drop(columns="per_query").sort_values(["task", "baseline", "seed"]).to_csv(index=False)
        atomic.write_text(results_dir / "leaderboard.csv", csv)
        atomic.write_text(results_dir / "index.html", html_report(board))
    return results_dir / "leaderboard.md"
