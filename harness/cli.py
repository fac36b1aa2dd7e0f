"""`python -m harness run|table|tasks|methods`."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path

OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")


def go_offline(allow_hub: bool) -> None:
    """No hub at run time unless the user opts in: set before any Hugging Face import."""
    if not allow_hub:
        for variable in OFFLINE_VARIABLES:
            os.environ.setdefault(variable, "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _csv(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _seeds(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(s) for s in _csv(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"seeds must be integers separated by commas, got {text!r}") from None


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {text!r}")
    return int(text)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="harness", description=__doc__,
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--plugin", action="append", default=[], help="import a module that registers methods or tasks")
    parser.add_argument("--allow-hub", action="store_true", help="do not force HF_HUB_OFFLINE (off by default)")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="fine-tune and score baselines on tasks, then rewrite the leaderboard",
                              formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    where = run.add_mutually_exclusive_group()
    where.add_argument("--task", default="cyber", help="built-in or plugin task name(s), comma-separated")
    where.add_argument("--task-dir", type=Path, help="a BEIR folder of your own (labels optional)")
    run.add_argument("--methods", default="bm25,frozen", help="baselines (configs in baselines/ or method names)")
    run.add_argument("--baselines-dir", type=Path, help="folder of baseline configs (default: the project's baselines/)")
    run.add_argument("--model", help="base model for every method that takes one: alias or local folder")
    run.add_argument("--seed", "--seeds", dest="seeds", type=_seeds, default=(0,), help="seed or comma-separated seeds")
    run.add_argument("--profile", default="small", help="task profile: small (CPU caps) or full")
    run.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    run.add_argument("--threads", type=int, help="torch CPU threads (1 is sometimes faster on 2 shared cores)")
    run.add_argument("--jobs", type=_positive, default=1, help="runs at once, in worker processes (threads split "
                     "between them unless --threads); on 2 cores, --jobs 2 is the fastest way through a leaderboard")
    run.add_argument("--out", type=Path, help="results directory (default: the project's results/)")
    run.add_argument("--overwrite", action="store_true", help="redo results that already exist")
    run.add_argument("--no-progress", action="store_true", help="hide progress bars")
    run.add_argument("--no-embedding-cache", action="store_true", help="always re-encode with frozen models")
    run.add_argument("--generator", nargs="?", const="smollm2", help="opt-in: answer test queries with this causal LM "
                     "(alias or local folder; bare flag = packaged SmolLM2) and score answer support")
    run.add_argument("--generator-k", type=int, default=3, help="contexts per generated answer")
    run.add_argument("--generator-queries", type=int, default=100, help="test queries answered (0 = all)")
    run.add_argument("--nli-model", help="local NLI cross-encoder folder for the NLI support score (with --generator)")

    table = commands.add_parser("table", help="regenerate leaderboard.md/.csv from result files")
    table.add_argument("--out", type=Path, help="results directory (default: the project's results/)")

    export = commands.add_parser("export", help="write results in another tool's format")
    export.add_argument("--mteb", type=Path, required=True, help="folder for mteb TaskResult JSON files")
    export.add_argument("--out", type=Path, help="results directory to read (default: the project's results/)")

    commands.add_parser("tasks", help="list tasks with statistics (builds them if needed)")
    commands.add_parser("methods", help="list methods and baseline configs")
    return parser


def _run(args) -> int:
    from harness.baselines import load_baseline
    from harness.catalog import load_task
    from harness.device import is_main_process
    from harness.leaderboard import write_leaderboard
    from harness import atomic
    from harness.paths import BASELINES_DIR, RESULTS_DIR, data_dir, embedding_cache_dir, runs_dir
    from harness.runner import RunSettings, run_benchmark

    results_dir = args.out or RESULTS_DIR
    for folder in (results_dir, data_dir(), embedding_cache_dir(), runs_dir()):
        atomic.sweep(folder)  # scratch files of earlier runs that were killed mid-write
    baselines_dir = args.baselines_dir or BASELINES_DIR
    # Resolve everything first, so a typo or bad file fails before any training starts.
    baselines = [load_baseline(name, baselines_dir, overrides={"model": args.model}) for name in _csv(args.methods)]
    if args.task_dir:
        tasks = [load_task(task_dir=args.task_dir)]
    else:
        tasks = [load_task(name, profile=args.profile) for name in _csv(args.task)]
    settings = RunSettings(
        seeds=args.seeds,
        device=args.device,
        threads=args.threads,
        results_dir=results_dir,
        overwrite=args.overwrite,
        show_progress=not args.no_progress,
        cache_embeddings=not args.no_embedding_cache,
        generator=args.generator,
        generator_k=args.generator_k,
        generator_max_queries=args.generator_queries or None,
        nli_model=args.nli_model,
        command="python -m harness " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
    )
    run_benchmark(tasks, baselines, settings, jobs=args.jobs, plugins=args.plugin)
    if is_main_process():  # under torchrun the other ranks only train
        print(write_leaderboard(results_dir))
    return 0


def _tasks(args) -> int:
    from harness.catalog import TASKS, load_task
    from harness.taskstats import task_statistics

    for name in TASKS.names():
        task = load_task(name, profile="full")
        stats = task_statistics(task)
        print(f"{name:<12} {task.metadata.get('domain', ''):<15} " + "  ".join(f"{k}={v}" for k, v in stats.items()))
    return 0


def _methods(args) -> int:
    from harness.baselines import baseline_names, load_baseline

    for name in baseline_names():
        baseline = load_baseline(name)
        source = baseline.path.name if baseline.path else "(method defaults)"
        print(f"{name:<16} method={baseline.method:<12} config={baseline.config_hash}  {source}")
    return 0


def _export(args) -> int:
    from harness.export import export_mteb
    from harness.paths import RESULTS_DIR

    written = export_mteb(args.out or RESULTS_DIR, args.mteb)
    print(f"wrote {len(written)} mteb result files under {args.mteb}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    go_offline(args.allow_hub)
    from harness.errors import HarnessError
    from harness.registry import load_plugin

    try:
        for module in args.plugin:
            load_plugin(module)
        if args.command == "run":
            return _run(args)
        if args.command == "table":
            from harness.leaderboard import write_leaderboard
            from harness.paths import RESULTS_DIR

            print(write_leaderboard(args.out or RESULTS_DIR))
            return 0
        return {"tasks": _tasks, "methods": _methods, "export": _export}[args.command](args)
    except HarnessError as exc:
        print(f"harness: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("harness: interrupted; finished results are kept, rerun to complete the rest", file=sys.stderr)
        return 130
