"""Result files -> the leaderboard's tables (rendering lives in `harness.report`).

Rows are (baseline, model, config); columns are tasks. The main table holds each task's main score
(declared by its card) with a 95% interval; one section per task and metric family
(`harness.metrics.FAMILIES`); and tests of each row against the rows it declares as references: on the main
score per query (`comparisons`), on each generated answer's outcome (`answer_comparisons`), on each query's
wrong-branch share where both rows missed (`branch_comparisons`) and, for the hierarchy and branch summaries,
over per-seed values (`seed_comparisons`).
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from dataclasses import dataclass, replace
from typing import Callable, Iterator

import numpy as np
import pandas as pd

from harness.metrics import FAMILIES, MetricFamily
from harness.metrics.rag import BRANCH_TEST_K
from harness.results import Result
from harness.stats import Interval, bootstrap_interval, holm, paired_bootstrap_p, paired_delta, welch_p

SIGNIFICANCE = 0.05
RowKey = tuple[str, str, str]  # (baseline, model, config hash)


def reference_of(method: str) -> str | None:
    """The baseline a method's config declares as its reference (`Config.reference`), if the method is known."""
    from harness.methods import METHODS

    try:
        return getattr(METHODS.get(method).Config, "reference", None)
    except Exception:  # a plugin method not loaded for `table`: compared with frozen only
        return None


UNTRAINED = " (untrained: step 0 selected)"


def untrained(result: Result) -> bool:
    """A fine-tuning run whose dev selection kept the untouched model: it is not a trained method's score."""
    return bool(result.train_info.get("trained")) and result.train_info.get("selected_step") == 0


def task_label(result: Result) -> str:
    """The task column: name, profile, and a mark when the scored queries were generated, not written by people."""
    synthetic = result.meta_info.get("task", {}).get("synthetic") or {}
    mark = f" [synthetic {result.split} queries]" if result.split in synthetic.get("splits", ()) else ""
    return f"{result.key.task} ({result.key.profile}){mark}"


LABEL_SUPERVISED = " ‡"


def label_supervised(result: Result) -> bool:
    """Trained on the task's curated label paths (`label_source = "gold"`), which label-scored sections score."""
    return result.train_info.get("label_source") == "gold"


def row_label(result: Result) -> str:
    return result.key.baseline + (UNTRAINED if untrained(result) else "")


TUNED = "-tuned"  # also `baselines.TUNED_SUFFIX`, which checks `compare_with` names without importing this module


def best_dev_score(result: Result) -> float | None:
    """The best dev nDCG@10 of a run's selection curve (the score dev selection kept); None without a curve."""
    from harness.methods.selection import SELECTION_METRIC

    curve = result.train_info.get("dev_curve") or []
    scores = [point[SELECTION_METRIC] for point in curve if SELECTION_METRIC in point]
    return max(scores) if scores else None


def dev_selected(results: list[Result], sweeps: dict[str, tuple[str, ...]]) -> list[Result]:
    """The `<baseline>-tuned` rows: for a baseline whose file names a dev sweep (`dev_sweep = [...]`: the same
    method at other settings), per task, model and seed, the run of the baseline or one of its sweep with the best
    dev nDCG@10, chosen on dev alone and kept whole (its test scores, per-query values and train_info);
    `run_info.dev_selected` records every candidate's dev score. A seed counts only where every candidate ran
    it; ties keep the earlier candidate (the baseline first)."""
    by_key = {(r.key.task, r.key.profile, r.key.model, r.key.seed, r.key.baseline): r for r in results}
    selected = []
    for baseline, sweep in sorted(sweeps.items()):
        candidates = (baseline, *sweep)
        for task, profile, model, seed, name in sorted(by_key):
            if name != baseline:
                continue
            runs = [by_key.get((task, profile, model, seed, c)) for c in candidates]
            scores = [best_dev_score(r) if r else None for r in runs]
            if any(score is None for score in scores):
                continue
            kept = max(range(len(runs)), key=lambda i: (scores[i], -i))
            config = hashlib.sha256("+".join(r.key.config_hash for r in runs).encode()).hexdigest()[:8]
            chosen = runs[kept]
            record = {"kept": candidates[kept], "best_dev": dict(zip(candidates, scores))}
            selected.append(replace(chosen, key=replace(chosen.key, baseline=baseline + TUNED, config_hash=config),
                                    run_info={**chosen.run_info, "dev_selected": record}))
    return selected


def run_precision(result: Result) -> str:
    """What a run computed in: "bf16" (autocast) or "fp32"; "" for a method without the knob (bm25). `precision =
    "auto"` is bf16 only where the CPU/GPU has bf16 matrix units, so one config hash can yield either. The trainer's
    own record (`train_info.bf16`) decides where there is one, else the hardware (`meta_info.hardware.bf16_matrix_units`);
    "?" is an older untrained result that recorded neither."""
    requested = result.run_info.get("config", {}).get("precision")
    if requested in ("bf16", "fp32") or not requested:
        return requested or ""
    trained = result.train_info.get("bf16")
    units = trained if isinstance(trained, bool) else result.meta_info.get("hardware", {}).get("bf16_matrix_units")
    return "?" if units is None else "bf16" if units else "fp32"


def precision_summary(values) -> str | None:
    """One row's precisions over its seeds: "bf16", or "bf16 2 + fp32 1" where the seeds mix; None without the knob."""
    counts = sorted(Counter(value for value in values if value).items())
    if len(counts) <= 1:
        return counts[0][0] if counts else None
    return " + ".join(f"{name} {count}" for name, count in counts)


def results_frame(results: list[Result]) -> pd.DataFrame:
    rows = []
    for r in results:
        rows.append({
            "task": task_label(r),
            "baseline": row_label(r),
            "baseline_key": r.key.baseline,
            "label_supervised": label_supervised(r),
            "model": r.key.model,
            "config": r.key.config_hash,
            "seed": r.key.seed,
            "precision": run_precision(r),
            "method": r.run_info.get("method", r.key.baseline),
            "main_metric": r.main_score,
            "main_score": r.scores[r.main_score],
            "per_query": r.per_query,
            "fit_time_s": r.run_info.get("fit_time_s"),
            "dev_kept": r.run_info.get("dev_selected", {}).get("kept"),  # a -tuned row's candidate for this seed
            "eval_time_s": r.evaluation_time,
            **r.scores,
        })
    return pd.DataFrame(rows)


def _groups(results: list[Result]) -> dict[tuple, list[Result]]:
    groups: dict[tuple, list[Result]] = {}
    for r in results:
        groups.setdefault((task_label(r), r.key.baseline, r.key.model, r.key.config_hash), []).append(r)
    return groups


def comparisons(results: list[Result], declared: dict[str, tuple[str, ...]] | None = None) -> pd.DataFrame:
    """Paired tests (two-level bootstrap over seeds and test queries, `stats.paired_bootstrap_p`) of each row's
    main score against frozen and against the baselines its file declares (`compare_with`, in `declared`): the
    rows that differ from it in one thing. Without a declaration: against the baseline its method declares as
    reference (heal -> contrastive, lbr -> llm-cl) and, for an ablation (a baseline named differently from its
    method, e.g. heal-gold), against its method's own baseline. `p_holm` is Holm-Bonferroni adjusted over every
    test in the table; `significant` uses it."""
    return _with_holm(pd.DataFrame(_paired_tests(results, declared, lambda r: r.per_query)))


ANSWER_OUTCOME = "hallucinated_answer_rate_"


def answer_comparisons(results: list[Result], declared: dict[str, tuple[str, ...]] | None = None) -> pd.DataFrame:
    """The same pairs of rows tested on each generated-answer outcome (`hallucinated_answer_rate_*`: 1 per
    hallucinated answer, `Result.per_query_other`), over the seeds that have answers and the sampled queries both
    rows answered; a negative delta = fewer hallucinated answers. Holm-Bonferroni over this table on its own."""
    return _outcome_comparisons(results, declared, lambda metric: metric.startswith(ANSWER_OUTCOME))


MIN_SHARED_MISSES = 10  # fewer queries missed by every seed of both rows: no test (a bootstrap over a handful says little)
BRANCH_OUTCOME = re.compile(rf"^wrong_branch_rate_l\d+_at_{BRANCH_TEST_K}_on_miss$")  # per query: rag.branch_outcomes


def branch_comparisons(results: list[Result], declared: dict[str, tuple[str, ...]] | None = None) -> pd.DataFrame:
    """The same pairs of rows tested on the headline branch metrics per query (`wrong_branch_rate_l*_at_5_on_miss`):
    each query's share of off-branch contexts, over the queries every seed of both rows missed, so the test
    compares the distractors of two rows on the same failed queries and no longer restates their hit rates; a
    negative delta = fewer off-branch distractors. Rows trained on the curated labels (‡) are left out.
    Holm-Bonferroni over this table on its own."""
    return _outcome_comparisons([r for r in results if not label_supervised(r)], declared, BRANCH_OUTCOME.match,
                                min_queries=MIN_SHARED_MISSES)


def _outcome_comparisons(results: list[Result], declared: dict[str, tuple[str, ...]] | None,
                         selected: Callable[[str], object], min_queries: int = 1) -> pd.DataFrame:
    """Paired tests on each per-query outcome in `Result.per_query_other` whose name is `selected`, over the seeds
    that hold it and the queries every one of them scored."""
    metrics = sorted({m for r in results for m in r.per_query_other if selected(m)})
    rows = []
    for metric in metrics:
        scored = [r for r in results if r.per_query_other.get(metric)]
        rows += [{**row, "metric": metric}
                 for row in _paired_tests(scored, declared, lambda r: r.per_query_other[metric], min_queries)]
    return _with_holm(pd.DataFrame(rows))


# Secondary metrics tested over per-seed values: the hierarchy's two whole-path summaries (results keep no per-item
# outcome for them) and the headline branch proxy over each row's own misses (`branch_comparisons` tests it per
# query, on the misses two rows share) (#17).
SEED_TESTED = ("hier_path_doc_f1", "hier_path_query_f1", "wrong_branch_rate_l1_at_5_on_miss")
MIN_SEEDS = 3


def seed_comparisons(results: list[Result], declared: dict[str, tuple[str, ...]] | None = None) -> pd.DataFrame:
    """The same pairs of rows tested on each `SEED_TESTED` metric with Welch's t-test over per-seed values
    (`stats.welch_p`), where both rows have at least `MIN_SEEDS` seeds and at least one varies over its seeds;
    rows trained on the curated labels these metrics score (‡) are left out. Each seed's probes use their own
    seeded split, so the test's variance is that of training seed and split together. Holm-Bonferroni over this
    table on its own."""
    rows = []
    for metric in SEED_TESTED:
        scored = [r for r in results if metric in r.scores and not label_supervised(r)]
        for row, runs, ref_runs in _reference_pairs(scored, declared, usable=lambda runs: len(runs) >= MIN_SEEDS):
            ours, theirs = [r.scores[metric] for r in runs], [r.scores[metric] for r in ref_runs]
            if np.ptp(ours) == 0 and np.ptp(theirs) == 0:  # seed-independent rows (bm25, frozen's ranking): no seed
                continue  # variance to test against; their difference is query variance, which needs per-query values
            rows.append({**row, "metric": metric, "delta": float(np.mean(ours) - np.mean(theirs)), "p_value": welch_p(ours, theirs)})
    return _with_holm(pd.DataFrame(rows))


def _paired_tests(results: list[Result], declared: dict[str, tuple[str, ...]] | None,
                  values: Callable[[Result], dict[str, float]], min_queries: int = 1) -> list[dict]:
    """One row per (row, reference) pair that `comparisons` describes, on the per-query `values` of each result."""
    rows = []
    for row, runs, ref_runs in _reference_pairs(results, declared, usable=lambda runs: all(values(r) for r in runs)):
        system, reference = [values(r) for r in runs], [values(r) for r in ref_runs]
        shared = len(set.intersection(*(set(v) for v in system + reference)))
        if shared < min_queries:
            continue
        rows.append({**row, "queries": shared, "delta": paired_delta(system, reference),
                     "p_value": paired_bootstrap_p(system, reference)})
    return rows


def _reference_pairs(results: list[Result], declared: dict[str, tuple[str, ...]] | None,
                     usable: Callable[[list[Result]], bool]) -> Iterator[tuple[dict, list[Result], list[Result]]]:
    """(the pair's table columns, the row's runs, the reference's runs) for each pair `comparisons` describes
    whose runs are `usable` on both sides."""
    groups = _groups(results)
    for (task, baseline, model, config), runs in sorted(groups.items()):
        method = runs[0].run_info.get("method", baseline)
        references = {"frozen", reference_of(method)} - {None, method}
        if baseline in (declared or {}):  # the baseline file names its own references
            references = {"frozen", *declared[baseline]} - {baseline}
        elif baseline != method:
            references.add(method)
        for reference_name in sorted(references):
            candidates = [(k, v) for k, v in groups.items() if k[0] == task and k[1] == reference_name]
            if not candidates:
                continue
            (_, ref_baseline, ref_model, _), ref_runs = sorted(candidates, key=lambda kv: kv[0][2] != model)[0]
            if not (usable(runs) and usable(ref_runs)):
                continue
            yield ({"task": task, "baseline": baseline, "model": model, "against_baseline": ref_baseline,
                    "against_model": ref_model, "seeds": f"{len(runs)} vs {len(ref_runs)}"}, runs, ref_runs)


def _with_holm(table: pd.DataFrame) -> pd.DataFrame:
    if not table.empty:
        table["p_holm"] = holm(table.p_value.tolist())
        table["significant"] = ["yes" if p < SIGNIFICANCE else "no" for p in table.p_holm]
    return table


def intervals(results: list[Result]) -> dict[tuple[str, RowKey], Interval | None]:
    """The main score's 95% bootstrap interval per (task, row), over seeds and queries; None without per-query scores."""
    return {(task, (baseline, model, config)): bootstrap_interval([r.per_query for r in runs]) if all(r.per_query for r in runs) else None
            for (task, baseline, model, config), runs in _groups(results).items()}


def interval_table(results: list[Result], bounds: dict, significant: set[tuple]) -> pd.DataFrame:
    """Main score mean [95% CI over seeds and queries] per row and task; † = differs from frozen (p < 0.05)."""
    cells: dict[RowKey, dict[str, str]] = {}
    means: dict[RowKey, list[float]] = {}
    for (task, baseline, model, config), runs in _groups(results).items():
        row = (baseline, model, config)
        interval = bounds[(task, row)]
        plain_mean = sum(r.scores[r.main_score] for r in runs) / len(runs)
        text = f"{interval.mean:.4f} [{interval.low:.3f}, {interval.high:.3f}]" if interval else f"{plain_mean:.4f}"
        mark = " †" if (task, baseline, model, "frozen") in significant else ""
        note = f"n={len(runs)}" + (UNTRAINED.replace(" (", ", ").rstrip(")") if any(untrained(r) for r in runs) else "")
        cells.setdefault(row, {})[task] = f"{text}{mark} ({note})"
        means.setdefault(row, []).append(interval.mean if interval else plain_mean)
    table = pd.DataFrame.from_dict(cells, orient="index")
    table.index = pd.MultiIndex.from_tuples(table.index, names=["baseline", "model", "config"])
    table = table[sorted(table.columns)]
    n_tasks = len(table.columns)
    table["mean"] = [f"{sum(v) / len(v):.4f}" if len(v) == n_tasks else "–" for v in (means[i] for i in table.index)]
    order = sorted(table.index, key=lambda i: -sum(means[i]) / len(means[i]) if len(means[i]) == n_tasks else 1.0)
    return table.loc[order]


def _family_columns(rows: pd.DataFrame, family: MetricFamily) -> list[str]:
    named = family.headline + tuple(sorted(c for c in rows.columns if family.headline_prefixes and c.startswith(family.headline_prefixes)))
    return [m for m in named if m in rows and rows[m].notna().any()]


def family_table(frame: pd.DataFrame, task: str, family: MetricFamily, summary: bool) -> pd.DataFrame | None:
    """Mean of the family's headline metrics per row; the `summary` (first) family also shows seeds and times
    and is sorted by the task's main score."""
    rows = frame[frame.task == task]
    present = _family_columns(rows, family)
    if not present:
        return None
    if family.scored_on_curated_labels:  # these cells score the labels such a row trained on: say so on the row
        rows = rows.assign(baseline=[b + LABEL_SUPERVISED if seen else b for b, seen in zip(rows.baseline, rows.label_supervised)])
    grouped = rows.groupby(["baseline", "model", "config"])
    if not summary:
        return grouped[present].mean().sort_values(present[0], ascending=False)
    table = grouped[present + ["fit_time_s", "eval_time_s"]].mean()
    table.insert(0, "seeds", grouped.size())
    table.insert(1, "precision", grouped["precision"].agg(precision_summary))
    main_metric = rows.main_metric.iloc[0]
    return table.sort_values(main_metric if main_metric in table else present[0], ascending=False)


@dataclass
class Leaderboard:
    """Every table of the leaderboard, computed once; `harness.report` renders it as Markdown, CSV and HTML."""

    frame: pd.DataFrame
    main: pd.DataFrame
    comparisons: pd.DataFrame
    answer_comparisons: pd.DataFrame  # paired tests of the generated-answer outcomes
    branch_comparisons: pd.DataFrame  # paired tests of the per-query wrong-branch outcomes on shared misses
    seed_comparisons: pd.DataFrame  # per-seed tests of the hierarchy and branch summaries
    intervals: dict[tuple[str, RowKey], Interval | None]
    sections: list[tuple[str, MetricFamily, pd.DataFrame]]  # (task, family, table)


def build(results: list[Result], declared: dict[str, tuple[str, ...]] | None = None,
          sweeps: dict[str, tuple[str, ...]] | None = None) -> Leaderboard | None:
    """All tables; `declared` (baseline -> compare_with) and `sweeps` (baseline -> dev_sweep, for the `-tuned`
    rows) default to what the project's baseline files say."""
    from harness.baselines import declared_comparisons, declared_sweeps

    declared = declared_comparisons() if declared is None else declared
    sweeps = declared_sweeps() if sweeps is None else sweeps
    tuned = dev_selected(results, sweeps)
    # a -tuned row is tested against frozen, its own baseline and that baseline's references
    declared = {**declared, **{b + TUNED: (b, *declared.get(b, ())) for b in {r.key.baseline[:-len(TUNED)] for r in tuned}}}
    measured, results = results, results + tuned  # the -tuned rows repeat runs: secondary tests use each run once
    frame = results_frame(results)
    if frame.empty:
        return None
    tests = comparisons(results, declared)
    significant = set()
    if not tests.empty:
        significant = {(r.task, r.baseline, r.model, r.against_baseline) for r in tests.itertuples() if r.significant == "yes"}
    bounds = intervals(results)
    sections = []
    for task in sorted(frame.task.unique()):
        for position, family in enumerate(FAMILIES.values()):
            table = family_table(frame, task, family, summary=position == 0)
            if table is not None:
                sections.append((task, family, table))
    return Leaderboard(frame, interval_table(results, bounds, significant), tests, answer_comparisons(measured, declared),
                       branch_comparisons(measured, declared), seed_comparisons(measured, declared), bounds, sections)
