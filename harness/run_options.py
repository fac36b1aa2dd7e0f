"""Every `run` option checked, and the tasks resolved, before anything is fitted or written: a typo, a
missing model, an unwritable `--out` or a name that would leave it is one line and exit 2 (`harness.cli`)."""

from __future__ import annotations

import itertools
import os
import sys
from pathlib import Path

from harness.errors import HarnessError


def csv_names(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def check_run_options(args, results_dir: Path) -> None:
    """The options that need nothing loaded: refused with one line before anything is read, fitted or written."""
    from harness.catalog import check_task_name

    if not args.seeds:
        raise HarnessError("--seeds names no seed")
    if min(args.seeds) < 0:
        raise HarnessError(f"seeds must be >= 0, got {min(args.seeds)} in --seeds")
    if args.task_name is not None:
        if not args.task_dir:
            raise HarnessError("--task-name names a --task-dir folder; built-in tasks keep their own names")
        check_task_name(args.task_name)
    if args.task_dir and args.profile not in (None, "full"):
        raise HarnessError(f"--profile {args.profile!r}: a --task-dir folder always runs whole; its only profile is 'full'")
    if args.nli_model and not args.generator:
        raise HarnessError("--nli-model scores generated answers, so it needs --generator")
    if args.baselines_dir and not args.baselines_dir.is_dir():
        raise HarnessError(f"--baselines-dir {args.baselines_dir} is not a folder")
    _check_device(args.device)
    _check_out(results_dir)


def _check_device(requested: str) -> None:
    """--device names a device this machine has ('auto' always does)."""

    if requested == "auto":
        return
    import torch

    try:
        device = torch.device(requested)
    except (RuntimeError, ValueError):
        raise HarnessError(f"--device {requested!r} is not a device (auto, cpu, cuda, cuda:1, ...)") from None
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise HarnessError(f"--device {requested}: this machine has {torch.cuda.device_count()} usable CUDA device(s)")


def _check_out(folder: Path) -> None:
    """--out is a folder this user can write, or the nearest existing folder above it is."""

    existing = folder.absolute()
    while not (existing.exists() or existing.is_symlink()):
        existing = existing.parent
    beside = "" if existing == folder.absolute() else f" ({existing} is the nearest existing path)"
    if not existing.is_dir():
        raise HarnessError(f"--out {folder} cannot be a results folder: {existing} is a file{beside}")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise HarnessError(f"--out {folder} is not writable: no write permission on {existing}")


def check_models(baselines, args) -> None:
    """Every model the run loads is a packaged alias or an existing model folder, checked before the first run
    (not after the lexical baselines have been written)."""
    from harness.llm import PACKAGED_CAUSAL_LMS, causal_lm_dir
    from harness.models import PACKAGED_MODELS, resolve_model_path

    aliases = {**PACKAGED_MODELS, **PACKAGED_CAUSAL_LMS}
    if args.model:
        _check_model(args.model, "--model", resolve_model_path, aliases)
    for baseline in baselines:
        spec = getattr(baseline.config, "model", None)
        if spec:
            _check_model(spec, f"--methods {baseline.name}", resolve_model_path, aliases)
    if args.generator:
        _check_model(args.generator, "--generator", causal_lm_dir, PACKAGED_CAUSAL_LMS)
    if args.nli_model:
        _check_model(args.nli_model, "--nli-model", resolve_model_path, {})


def check_answer_models(generator: str, nli_model: str | None) -> None:
    """`harness answer`'s models, checked before any result is touched."""
    from harness.llm import PACKAGED_CAUSAL_LMS, causal_lm_dir
    from harness.models import resolve_model_path

    _check_model(generator, "--generator", causal_lm_dir, PACKAGED_CAUSAL_LMS)
    if nli_model:
        _check_model(nli_model, "--nli-model", resolve_model_path, {})


def _check_model(spec: str, option: str, resolve, aliases: dict) -> None:
    from harness.registry import Registry

    if spec in aliases:
        return  # packaged: present once its package is installed; a packaged causal LM is converted on first use
    looks_like_path = any(mark in spec for mark in "/\\~.") or Path(spec).exists()
    if not looks_like_path and aliases:
        unknown = Registry("model alias", "harness.model_aliases", aliases).unknown_message(spec)
        raise HarnessError(f"{option}: {unknown}, or a local model folder")
    try:
        resolve(spec)
    except HarnessError as exc:
        raise HarnessError(f"{option}: {exc}") from None


def load_tasks(args) -> list:
    """The tasks of --task or --task-dir; a profile given by name is checked for every task before any is built."""
    from harness.catalog import check_profile, load_task

    if args.task_dir:
        return [load_task(task_dir=args.task_dir, task_name=args.task_name)]
    names = csv_names(args.task)
    if not names:
        raise HarnessError("--task names no task")
    for name in names if args.profile is not None else ():
        check_profile(name, args.profile)
    return [load_task(name, profile=args.profile or "small") for name in names]


def check_result_paths(tasks, baselines, seeds, results_dir: Path) -> None:
    """Every result file is <out>/<task>/<baseline>/<file>: no task, baseline or profile name leads outside --out."""
    from harness.runner import result_key

    root = Path(os.path.abspath(results_dir))
    for task, baseline, seed in itertools.product(tasks, baselines, seeds):
        path = result_key(task, baseline, seed).json_path(root)
        parts = path.relative_to(root).parts if root in path.parents else ()
        if len(parts) != 3 or ".." in parts:
            raise HarnessError(f"task {task.name!r} with baseline {baseline.name!r} would write {path}, "
                               f"which is not a file two folders below --out {results_dir}")


def load_plugin_module(module: str) -> None:
    """Import a `--plugin` module by its dotted name; any failure is one line naming the module."""
    from harness.registry import load_plugin

    if os.getcwd() not in sys.path and "" not in sys.path:
        # `python -m harness` keeps the working directory (last) on sys.path; the `harness` console script
        # does not, so without this `--plugin my_module` would work with one entry point only
        sys.path.append(os.getcwd())
    if not all(part.isidentifier() for part in module.split(".")):
        raise HarnessError(f"--plugin {module!r} is not a module name: give an importable dotted name such as "
                           "my_baselines or mypackage.tasks (put the folder that holds it on PYTHONPATH)")
    try:
        load_plugin(module)
    except HarnessError:
        raise
    except Exception as exc:  # the plugin's own code failed while being imported
        detail = (str(exc).splitlines() or [""])[0]
        raise HarnessError(f"plugin module {module!r} failed to import: {type(exc).__name__}: {detail}") from None
