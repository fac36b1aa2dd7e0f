"""The faster CPU leaderboard configuration against today's, fit by fit, in one run on one machine.

For each method (heal first, as `harness run` orders them), the 100-step CPU configuration ("new":
`<method>-100`, step-0 dev embeddings from the embedding cache) and the default it would replace ("old":
`<method>`, 200 steps, with `dev_cache_untrained` off as it was before 2026-12-01) are fitted and scored at the
same time in two worker processes with one torch thread each: the layout of `harness run --jobs 2`, so
both see the same machine. Prints per method the fit wall time (training + dev selection, from `train_info`) of
each, the ratio new/old, the steps run, the selected step and the best dev and the test nDCG@10.
When "new" stops early, "old" has the machine to itself for its remaining steps, so the ratio is a
conservative (high) estimate. "new" shares one embedding cache across its methods, as a leaderboard
run does, so contrastive and lora reuse the step-0 dev embeddings heal wrote.

    python benchmarks/leaderboard_speed.py --task healthcare-icd
    python benchmarks/leaderboard_speed.py --task healthcare --methods contrastive --length-grouped

`--intervals RESULTS_DIR` instead checks scores already made: each seed-0 score of the 100-step rows
(`<method>-100`, and `<method>-fast`: 100 steps at twice the peak learning rate) in RESULTS_DIR against the
95% interval (seeds and queries, as the leaderboard computes it) of the 200-step row: `<method>`, or
`heal-legacy` (the `heal` of the 84-minute leaderboard run) where a task has no by-role `heal` result.

    python benchmarks/leaderboard_speed.py --intervals results
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

OLD = {"dev_cache_untrained": False}  # `<method>` as it ran before: every step-0 dev evaluation computed
GROUPED = {"length_grouped_batches": True}  # --length-grouped, contrastive and lora only: heal has its own sampler


def variant_of(method: str, variant: str, grouped: bool) -> tuple[str, dict]:
    """(baseline name, overrides) of one side of the comparison."""
    if variant == "old":
        return method, OLD
    return f"{method}-100", (GROUPED if grouped and method != "heal" else {})


def worker(task_name: str, baseline_name: str, knobs: dict, scratch: Path) -> dict:
    """Fit and score one baseline (seed 0) and return what the comparison needs."""
    import torch

    from harness.baselines import load_baseline
    from harness.catalog import load_task
    from harness.runner import RunSettings, run_one

    torch.set_num_threads(1)
    baseline = load_baseline(baseline_name, overrides=knobs)
    path = run_one(load_task(task_name), baseline, 0, RunSettings(results_dir=scratch / "results", show_progress=False))
    result = json.loads(path.read_text())
    info = result["train_info"]
    return {
        "fit_s": info["train_seconds"],
        "steps": info["steps"],
        "selected_step": info["selected_step"],
        "dev_evals": len(info["dev_curve"]),
        "dev_eval_s": info["dev_eval_seconds"],
        "dev_ndcg10": max(point["ndcg_at_10"] for point in info["dev_curve"]),
        "test_ndcg10": result["scores"]["test"][0]["ndcg_at_10"],
        "config_hash": result["run_info"]["key"]["config_hash"],
    }


def spawn(task: str, method: str, variant: str, scratch: Path, grouped: bool) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HARNESS_RUNS_DIR": str(scratch / "runs"),  # run folders differ by config hash
           "HARNESS_EMBEDDING_CACHE": str(scratch / variant / "embeddings")}
    name, knobs = variant_of(method, variant, grouped)
    command = [sys.executable, __file__, "--worker", json.dumps([task, name, knobs, str(scratch / variant / method)])]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True)


def compare(task: str, methods: list[str], grouped: bool) -> None:
    scratch = Path(tempfile.mkdtemp(prefix="leaderboard-speed-"))
    totals = {"old": 0.0, "new": 0.0}
    print(f"task {task}; old = <method> with {OLD}; new = <method>-100" + (f" with {GROUPED} (not heal)" if grouped else ""))
    print("method | variant | config | fit s | steps | selected | dev evals | dev eval s | best dev nDCG@10 | test nDCG@10")
    for method in methods:
        workers = {variant: spawn(task, method, variant, scratch, grouped) for variant in ("old", "new")}
        rows = {}
        for variant, process in workers.items():
            out, _ = process.communicate()
            if process.returncode:
                raise SystemExit(f"{method} {variant} failed (exit {process.returncode})")
            rows[variant] = json.loads(out.strip().splitlines()[-1])
        for variant, row in rows.items():
            totals[variant] += row["fit_s"]
            print(f"{method} | {variant} | {row['config_hash']} | {row['fit_s']:.0f} | {row['steps']} | {row['selected_step']} | {row['dev_evals']} | "
                  f"{row['dev_eval_s']:.0f} | {row['dev_ndcg10']:.4f} | {row['test_ndcg10']:.4f}")
        print(f"{method} | new/old | | {rows['new']['fit_s'] / rows['old']['fit_s']:.3f} | | | | | "
              f"{rows['new']['dev_ndcg10'] - rows['old']['dev_ndcg10']:+.4f} | {rows['new']['test_ndcg10'] - rows['old']['test_ndcg10']:+.4f}",
              flush=True)
    print(f"all methods: new/old fit time {totals['new'] / totals['old']:.3f} ({totals['new']:.0f} s / {totals['old']:.0f} s)")


# each 100-step row (`-100`, `-fast`) -> the 200-step rows whose interval it is checked against, first found wins
REFERENCES = {"contrastive": ("contrastive",), "lora": ("lora",), "heal": ("heal", "heal-legacy")}
PREVIOUS = {f"{method}-{suffix}": rows for method, rows in REFERENCES.items() for suffix in ("100", "fast")}


def check_intervals(results_dir: Path) -> None:
    from harness.leaderboard import intervals
    from harness.results import load_results

    results = [r for r in load_results(results_dir) if r.key.profile == "small"]
    bounds = {(task, row[0]): interval for (task, row), interval in intervals(results).items()}
    print("task | method | seed 0 | previous row | previous mean [95% interval] | inside")
    inside = total = 0
    for r in sorted(results, key=lambda r: (r.key.task, r.key.baseline)):
        if r.key.baseline not in PREVIOUS or r.key.seed != 0:
            continue
        task = next(t for t, _ in bounds if t.startswith(f"{r.key.task} ("))
        previous = next((name for name in PREVIOUS[r.key.baseline] if bounds.get((task, name))), None)
        if previous is None:
            continue
        before, score = bounds[(task, previous)], r.scores[r.main_score]
        ok = before.low <= score <= before.high
        inside, total = inside + ok, total + 1
        print(f"{r.key.task} | {r.key.baseline} | {score:.4f} | {previous} | {before.mean:.4f} [{before.low:.3f}, {before.high:.3f}] | {'yes' if ok else 'NO'}")
    print(f"{inside} of {total} scores inside the previous interval")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", default="healthcare-icd")
    parser.add_argument("--methods", default="heal,contrastive,lora")
    parser.add_argument("--length-grouped", action="store_true", help="new also uses length_grouped_batches (contrastive, lora)")
    parser.add_argument("--intervals", type=Path, help="check the results in this folder against the rows they replaced")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        task, name, knobs, scratch = json.loads(args.worker)
        print(json.dumps(worker(task, name, knobs, Path(scratch))))
        return
    if args.intervals:
        check_intervals(args.intervals)
        return
    compare(args.task, args.methods.split(","), args.length_grouped)


if __name__ == "__main__":
    main()
