"""`python -m harness run|table|answer|tasks|methods|export|make-queries|export-model`."""

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
    from harness.run_options import csv_names

    return csv_names(text)


def _seeds(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(s) for s in _csv(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"seeds must be integers separated by commas, got {text!r}") from None


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {text!r}")
    return int(text)


def _non_negative(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"must be a whole number >= 0, got {text!r}")
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
    where.add_argument("--task-dir", type=Path, help="a BEIR folder of your own (labels optional); its results "
                       "are keyed by its content, so an edited folder is run again")
    run.add_argument("--task-name", help="name of the --task-dir task (default: the folder's name)")
    run.add_argument("--methods", default="bm25,frozen", help="baselines (configs in baselines/ or method names)")
    run.add_argument("--baselines-dir", type=Path, help="folder of baseline configs (default: the project's baselines/)")
    run.add_argument("--model", help="base model for every method that takes one: alias or local folder")
    run.add_argument("--set", dest="settings", action="append", default=[], metavar="KEY=VALUE",
                     help="override a config key of every selected baseline that has it (repeatable); the value is "
                     "read as TOML (1e-4, true, \"text\", [1, 2]) and enters the config hash")
    run.add_argument("--seed", "--seeds", dest="seeds", type=_seeds, default=(0,), help="seed or comma-separated seeds")
    run.add_argument("--profile", help="task profile: small (CPU caps; the default) or full; a --task-dir "
                     "folder always runs full")
    run.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    run.add_argument("--threads", type=_positive, help="torch CPU threads (1 is sometimes faster on 2 shared cores)")
    run.add_argument("--jobs", type=_positive, default=1, help="runs at once, in worker processes (threads split "
                     "between them unless --threads); on 2 cores, --jobs 2 is the fastest way through a leaderboard")
    run.add_argument("--executor", choices=("local", "ray"), default="local", help="local: here, --jobs at once; ray: "
                     "each run a Ray task asking for its baseline's `resources` (--out must be shared by all nodes)")
    run.add_argument("--ray-address", help="join this Ray cluster (e.g. auto, ray://head:10001); default: start a local one")
    run.add_argument("--out", type=Path, help="results directory (default: ./results)")
    run.add_argument("--overwrite", action="store_true", help="redo results that already exist")
    run.add_argument("--no-progress", action="store_true", help="hide progress bars")
    run.add_argument("--no-embedding-cache", action="store_true", help="always re-encode with frozen models")
    run.add_argument("--generator", nargs="?", const="smollm2", help="opt-in: answer test queries with this causal LM "
                     "(alias or local folder; bare flag = packaged SmolLM2) and score answer support")
    run.add_argument("--generator-k", type=_positive, default=3, help="contexts per generated answer")
    run.add_argument("--generator-queries", type=_non_negative, default=100, help="seeded sample of test queries answered, the same "
                     "for every method (0 = all); `harness answer` does the same for stored results")
    run.add_argument("--nli-model", help="local NLI cross-encoder folder for the NLI support score (with --generator)")

    answer = commands.add_parser("answer", help="answer test queries from stored results' rankings with a local causal "
                                 "LM and add answer-support (hallucination) scores to those results; no refit",
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    answered = answer.add_mutually_exclusive_group()
    answered.add_argument("--task", default="cyber", help="task name(s), comma-separated")
    answered.add_argument("--task-dir", type=Path, help="the BEIR folder the results were run on")
    answer.add_argument("--task-name", help="name of the --task-dir task (default: the folder's name)")
    answer.add_argument("--methods", default="frozen,contrastive,heal", help="baselines whose stored results get answers")
    answer.add_argument("--seed", "--seeds", dest="seeds", type=_seeds, default=(0,), help="training seed(s) of those results")
    answer.add_argument("--generator", default="smollm2", help="causal LM: packaged alias or local Hugging Face folder "
                        "(on a GPU, a bigger local model is this one flag)")
    answer.add_argument("--k", type=_positive, default=3, help="contexts per answer")
    answer.add_argument("--queries", type=_non_negative, default=100, help="seeded sample of test queries (0 = all); "
                        "the same sample for every method and seed")
    answer.add_argument("--sample-seed", type=int, default=0, help="seed of that sample")
    answer.add_argument("--max-new-tokens", type=_positive, default=128, help="answer length limit")
    answer.add_argument("--max-context-chars", type=_positive, default=1500, help="characters kept per context")
    answer.add_argument("--nli-model", help="local NLI cross-encoder folder: adds sentence-vs-chunk entailment scores")
    answer.add_argument("--device", default="auto", help="auto, cpu, cuda, ...")
    answer.add_argument("--threads", type=_positive, help="torch CPU threads")
    answer.add_argument("--out", type=Path, help="results directory (default: ./results)")
    answer.add_argument("--overwrite", action="store_true", help="rescore results that already hold answers made this way")

    branches = commands.add_parser("branch-outcomes", help="add per-query wrong-branch outcomes (the paired branch "
                                   "test's input) to stored results from their run files; no refit",
                                   formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    branched = branches.add_mutually_exclusive_group()
    branched.add_argument("--task", help="task name(s), comma-separated (default: every built-in task with stored results)")
    branched.add_argument("--task-dir", type=Path, help="the BEIR folder the results were run on")
    branches.add_argument("--task-name", help="name of the --task-dir task (default: the folder's name)")
    branches.add_argument("--out", type=Path, help="results directory (default: ./results)")

    table = commands.add_parser("table", help="regenerate leaderboard.md/.csv from result files")
    table.add_argument("--out", type=Path, help="results directory (default: ./results)")

    export = commands.add_parser("export", help="write results in another tool's format")
    export.add_argument("--mteb", type=Path, required=True, help="folder for mteb TaskResult JSON files")
    export.add_argument("--out", type=Path, help="results directory to read (default: ./results)")

    queries = commands.add_parser("make-queries", help="generate synthetic queries and qrels for a corpus with a causal LM",
                                  formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    queries.add_argument("--task-dir", type=Path, required=True, help="a folder with corpus.jsonl (queries optional)")
    queries.add_argument("--out-dir", type=Path, help="new task folder: corpus copy, human dev/test qrels, synthetic "
                         "train (required when --task-dir has human queries, which are never touched)")
    queries.add_argument("--generator", default="smollm2", help="causal LM: packaged alias or local folder")
    queries.add_argument("--per-doc", type=_positive, default=3, help="queries generated per document")
    queries.add_argument("--splits", type=_csv, help="synthetic splits (default: train,dev,test for a bare corpus, "
                         "train beside human queries)")
    queries.add_argument("--seed", type=int, default=0, help="sampling seed; also picks --max-docs and deals splits")
    queries.add_argument("--batch-size", type=_positive, default=8, help="prompts per generate call (cached after each)")
    queries.add_argument("--filter", choices=("bm25", "frozen", "none"), default="bm25",
                         help="round trip: keep a query only if this retriever ranks its document in the top k")
    queries.add_argument("--top-k", type=_positive, default=3, help="rank the round trip needs")
    queries.add_argument("--max-docs", type=_positive, help="documents used (seeded choice; default all)")
    queries.add_argument("--min-words", type=_positive, default=3, help="shorter queries are dropped")
    queries.add_argument("--max-words", type=_positive, default=24, help="longer queries are dropped")
    queries.add_argument("--max-new-tokens", type=_positive, default=48, help="generation length limit")
    queries.add_argument("--device", default="auto", help="auto, cpu, cuda, ...")

    export_model = commands.add_parser("export-model", help="write a finished run's model as a self-contained "
                                       "sentence-transformers folder with a model card")
    export_model.add_argument("result", type=Path, help="the run's result JSON (results/<task>/<baseline>/...json)")
    export_model.add_argument("dest", type=Path, help="new folder to write")

    tasks = commands.add_parser("tasks", help="list tasks: domain, query and document counts of a profile, built folder")
    tasks.add_argument("--profile", default="small", help="the profile whose counts are shown (tasks without it: full)")
    commands.add_parser("methods", help="list methods and baseline configs")
    return parser


def _run(args) -> int:
    from harness.baselines import apply_settings, load_baseline, parse_setting
    from harness.device import end_distributed, is_main_process
    from harness.errors import HarnessError
    from harness.report import write_leaderboard
    from harness import atomic
    from harness.paths import BASELINES_DIR, data_dir, default_results_dir, embedding_cache_dir, runs_dir
    from harness.grid import run_benchmark
    from harness.run_options import check_models, check_result_paths, check_run_options, load_tasks
    from harness.runner import RunSettings

    results_dir = args.out or default_results_dir()
    # Check and resolve everything first: a typo, a missing model or a bad file fails before anything is
    # fitted or written.
    check_run_options(args, results_dir)
    for folder in (results_dir, data_dir(), embedding_cache_dir(), runs_dir()):
        atomic.sweep(folder)  # scratch files of earlier runs that were killed mid-write
    baselines_dir = args.baselines_dir or BASELINES_DIR
    baselines = [load_baseline(name, baselines_dir, overrides={"model": args.model}) for name in _csv(args.methods)]
    if not baselines:
        raise HarnessError("--methods names no method")
    baselines = apply_settings(baselines, dict(parse_setting(text) for text in args.settings))
    check_models(baselines, args)
    tasks = load_tasks(args)
    check_result_paths(tasks, baselines, args.seeds, results_dir)
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
    run_benchmark(tasks, baselines, settings, jobs=args.jobs, plugins=args.plugin,
                  executor=args.executor, ray_address=args.ray_address)
    end_distributed()
    if is_main_process():  # under torchrun the other ranks only train
        print(write_leaderboard(results_dir))
    return 0


def _answer(args) -> int:
    from harness.answer_results import AnswerSettings, answer_stored
    from harness.device import resolve_device, set_threads
    from harness.paths import default_results_dir
    from harness.report import write_leaderboard
    from harness.run_options import check_answer_models

    results_dir = args.out or default_results_dir()
    check_answer_models(args.generator, args.nli_model)
    settings = AnswerSettings(generator=args.generator, k=args.k, max_queries=args.queries or None,
                              sample_seed=args.sample_seed, max_new_tokens=args.max_new_tokens,
                              max_context_chars=args.max_context_chars, nli_model=args.nli_model)
    set_threads(args.threads)
    tasks = _task_loaders(args, _csv(args.task))
    command = "python -m harness " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    updated = answer_stored(results_dir, tasks, _csv(args.methods), args.seeds, settings,
                            resolve_device(args.device), args.overwrite, command)
    print(f"added answer scores to {len(updated)} result(s)", file=sys.stderr)
    print(write_leaderboard(results_dir))
    return 0


def _task_loaders(args, names: list[str]) -> dict:
    """{task name: load(profile)} for the commands that add scores to stored results (`--task` or `--task-dir`)."""
    from functools import partial

    from harness.catalog import load_task, resolve_card

    if args.task_dir:  # a folder task has one profile, its whole content
        folder = load_task(task_dir=args.task_dir, task_name=args.task_name)
        return {folder.name: lambda profile: folder}
    for name in names:
        resolve_card(name)  # an unknown name fails here, with "did you mean"
    return {name: partial(lambda name, profile: load_task(name, profile=profile), name) for name in names}


def _branch_outcomes(args) -> int:
    from harness.branch_results import add_branch_outcomes_stored
    from harness.catalog import TASKS
    from harness.paths import default_results_dir
    from harness.report import write_leaderboard
    from harness.results import load_results

    results_dir = args.out or default_results_dir()
    names = _csv(args.task) if args.task else sorted({r.key.task for r in load_results(results_dir)} & set(TASKS.names()))
    updated = add_branch_outcomes_stored(results_dir, _task_loaders(args, names))
    print(f"added branch outcomes to {len(updated)} result(s)", file=sys.stderr)
    print(write_leaderboard(results_dir))
    return 0


def _tasks(args) -> int:
    from harness.catalog import TASKS, ensure_built, load_task, resolve_card
    from harness.errors import HarnessError
    from harness.taskstats import task_statistics

    print(f"{'task':<15} {'domain':<20} {'profile':<8} {'docs':>7} {'train_q':>8} {'dev_q':>6} {'test_q':>7} {'depth':<10} folder")
    for name in TASKS.names():
        card = resolve_card(name)
        profile = args.profile if args.profile in card.profiles else "full"
        try:
            task = load_task(name, profile=profile)
        except HarnessError as exc:  # a data package that is not installed: say so, list the rest
            print(f"{name:<15} {card.domain:<20} unavailable: {exc}")
            continue
        stats = task_statistics(task)
        counts = [stats.get(f"{split}_q", 0) for split in ("train", "dev", "test")]
        print(f"{name:<15} {card.domain:<20} {profile:<8} {stats['docs']:>7} {counts[0]:>8} {counts[1]:>6} {counts[2]:>7} "
              f"{stats['depth']:<10} {ensure_built(card)}")
    return 0


MAIN_SETTINGS = ("model", "max_steps", "learning_rate", "train_batch_size", "max_seq_length", "label_source", "k1")


def _methods(args) -> int:
    from harness.baselines import baseline_names, changed_keys, describe, load_baseline

    print(f"{'baseline':<18} {'method':<12} {'config':<9} {'main settings (or: <reference> with <what differs>)':<58} description")
    for name in baseline_names():
        baseline = load_baseline(name)
        values = baseline.config_dict
        settings = " ".join(f"{key}={values[key]}" for key in MAIN_SETTINGS if key in values)
        if baseline.extends:  # a one-variable row shows its variable, not settings it shares with its reference
            settings = f"{baseline.extends} with " + " ".join(f"{k}={v}" for k, v in changed_keys(baseline).items())
        text = describe(baseline)
        text = text if len(text) <= 90 else text[:89] + "…"
        print(f"{name:<18} {baseline.method:<12} {baseline.config_hash:<9} {settings:<58} {text}")
    return 0


def _export(args) -> int:
    from harness.export import export_mteb
    from harness.paths import default_results_dir

    written = export_mteb(args.out or default_results_dir(), args.mteb)
    print(f"wrote {len(written)} mteb result files under {args.mteb}")
    return 0


def _make_queries(args) -> int:
    from harness.device import resolve_device
    from harness.synthetic_queries import QuerySettings, load_generator, make_queries, summary_line

    device = resolve_device(args.device)
    settings = QuerySettings(per_doc=args.per_doc, splits=tuple(args.splits) if args.splits else None, seed=args.seed,
                             batch_size=args.batch_size, filter=args.filter, top_k=args.top_k, max_docs=args.max_docs,
                             min_words=args.min_words, max_words=args.max_words, device=device)
    generate = load_generator(args.generator, device, args.seed, args.max_new_tokens)
    info = make_queries(args.task_dir, generate, settings, out_dir=args.out_dir)
    print(summary_line(info, args.out_dir or args.task_dir))
    return 0


def _export_model(args) -> int:
    from harness.export_model import export_model

    print(f"exported {export_model(args.result, args.dest)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    go_offline(args.allow_hub)
    from harness.errors import HarnessError
    from harness.run_options import load_plugin_module

    try:
        for module in args.plugin:
            load_plugin_module(module)
        if args.command == "run":
            return _run(args)
        if args.command == "table":
            from harness import atomic
            from harness.report import write_leaderboard
            from harness.paths import default_results_dir
            from harness.results import scan_results

            results_dir = args.out or default_results_dir()
            atomic.sweep(results_dir)  # scratch files of an earlier table or run killed mid-write
            for path, reason in scan_results(results_dir).skipped:  # write_leaderboard counts only the valid ones
                shown = path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path
                print(f"harness: skipped {shown}: {reason}", file=sys.stderr)
            print(write_leaderboard(results_dir))
            return 0
        return {"answer": _answer, "branch-outcomes": _branch_outcomes, "tasks": _tasks, "methods": _methods, "export": _export,
                "make-queries": _make_queries, "export-model": _export_model}[args.command](args)
    except HarnessError as exc:
        print(f"harness: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("harness: interrupted; finished results are kept, rerun to complete the rest", file=sys.stderr)
        return 130
