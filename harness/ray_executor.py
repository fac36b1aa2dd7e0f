"""`run --executor ray`: every (task, baseline, seed) unit is one Ray task, on one machine or a cluster.

Each unit asks for its baseline's `resources` (default one CPU, no GPU), so Ray places GPU runs on
GPUs and runs as many units at once as the cluster holds. The worker writes its result file itself,
atomically, exactly as a local run does: `--out` must therefore be a folder every node sees at the
same path (a shared filesystem). Finished results are skipped by the driver before anything is
submitted. A failing unit does not stop the others: its traceback is printed and one error at the
end says how many failed.
"""

from __future__ import annotations

import os
import pickle
import sys
import traceback
from dataclasses import replace
from pathlib import Path

from harness.errors import HarnessError

# What a worker must see as the driver does: scratch and cache folders, offline switches.
_FORWARDED_PREFIXES = ("HARNESS_", "HF_", "TRANSFORMERS_", "TOKENIZERS_")
DEFAULT_RESOURCES = {"num_cpus": 1, "num_gpus": 0}


def _import_ray():
    try:
        import ray
    except ImportError:
        raise HarnessError("--executor ray needs Ray: pip install -e .[ray]") from None
    return ray


def forwarded_environment() -> dict[str, str]:
    """The driver's HARNESS_*/HF_* variables, with the run-artifact folder made absolute: a worker's
    working directory is not the driver's."""
    from harness.paths import runs_dir

    forwarded = {k: v for k, v in os.environ.items() if k.startswith(_FORWARDED_PREFIXES)}
    return {**forwarded, "HARNESS_RUNS_DIR": str(runs_dir().resolve())}


def unit_resources(baseline) -> dict[str, float]:
    """The Ray resources one run of `baseline` asks for: its `resources` table over the defaults."""
    return {**DEFAULT_RESOURCES, **getattr(baseline, "resources", {})}


def _run_unit(task_blob: bytes, unit_blob: bytes, environment: dict[str, str], sys_path: list[str],
              plugins: list[str]) -> Path:
    """The body of one Ray task; it runs in a worker that may have served other units before.

    Task and (baseline, seed, settings) arrive pickled and are unpickled only once the driver's
    environment, import path and plugins are in place: a plugin's config class must import first.
    """
    os.environ.update(environment)
    sys.path.extend(p for p in sys_path if p not in sys.path and os.path.isdir(p))  # as a spawned pool sees it
    from harness.parallel import reset_gpu_peak
    from harness.registry import load_plugin
    from harness.runner import run_one

    name = "a run"
    try:
        for module in plugins:  # registrations do not cross processes; a repeated import is a no-op
            load_plugin(module)
        task, (baseline, seed, settings) = pickle.loads(task_blob), pickle.loads(unit_blob)
        name = f"{task.name}/{baseline.name}/seed{seed}"
        reset_gpu_peak()
        return run_one(task, baseline, seed, settings)
    except Exception:  # the traceback as text: some exceptions (InputError) do not unpickle on the driver
        raise RuntimeError(f"{name} failed:\n{traceback.format_exc()}") from None


def _connect(ray, address: str | None) -> bool:
    """Join `address` or start a local Ray (dashboard as Ray sets it); True when this call started it."""
    if ray.is_initialized():
        return False
    ray.init(address=address, log_to_driver=True)
    return True


def _warn_infeasible(ray, units) -> None:
    """A unit asking for more than the whole cluster has would wait forever: say so (an autoscaler may still add it)."""
    available = ray.cluster_resources()
    names = {"num_cpus": "CPU", "num_gpus": "GPU"}
    for _task, baseline, _seed in units:
        for key, amount in unit_resources(baseline).items():
            if amount > available.get(names[key], 0):
                print(f"[harness] warning: {baseline.name} asks for {key}={amount} but the Ray cluster has "
                      f"{available.get(names[key], 0)}; its runs wait until a node with it joins", file=sys.stderr)
                return


def run_on_ray(units: list, settings, plugins: list[str] = (), address: str | None = None, progress=None) -> list[Path]:
    """Run every unit as a Ray task; return result paths in the units' order, or raise one HarnessError
    naming how many failed after every other unit has finished."""
    from harness.parallel import expected_cost
    from harness.runner import result_key

    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise HarnessError("--executor ray cannot be combined with torchrun; use one or the other")
    ray = _import_ray()
    settings = replace(settings, results_dir=Path(settings.results_dir).resolve())  # workers start elsewhere
    paths = [result_key(*unit).json_path(settings.results_dir) for unit in units]
    todo = [i for i, path in enumerate(paths) if settings.overwrite or not path.exists()]
    for i in sorted(set(range(len(units))) - set(todo)):
        task, baseline, seed = units[i]
        print(f"[harness] skip {task.name}/{baseline.name}/seed{seed}: {paths[i]} exists (use --overwrite to redo)",
              file=sys.stderr)
    if not todo:
        return paths
    started = _connect(ray, address)
    try:
        _warn_infeasible(ray, [units[i] for i in todo])
        failures = _submit_and_wait(ray, units, sorted(todo, key=lambda i: expected_cost(units[i]), reverse=True),
                                    settings, list(plugins), progress)
    finally:
        if started:
            ray.shutdown()
    if failures:
        for message in failures.values():
            print(message, file=sys.stderr)
        names = ", ".join(f"{units[i][0].name}/{units[i][1].name}/seed{units[i][2]}" for i in sorted(failures))
        raise HarnessError(f"{len(failures)} of {len(todo)} runs failed ({names}); tracebacks above, "
                           "finished results are kept, rerun to retry the rest")
    return paths


def _submit_and_wait(ray, units, order: list[int], settings, plugins: list[str], progress=None) -> dict[int, str]:
    """Submit the units longest first; wait for all; return {unit index: error text} for the failed ones."""
    remote = ray.remote(_run_unit)
    environment, sys_path = forwarded_environment(), list(sys.path)
    shared_tasks: dict[int, object] = {}  # one object-store copy of each task, not one per unit
    pending = {}
    for i in order:
        task, baseline, seed = units[i]
        if id(task) not in shared_tasks:
            shared_tasks[id(task)] = ray.put(pickle.dumps(task))
        resources = unit_resources(baseline)
        unit_settings = replace(settings, threads=settings.threads or max(1, int(resources["num_cpus"])),
                                show_progress=False)  # interleaved bars are unreadable
        ref = remote.options(name=f"{task.name}/{baseline.name}/seed{seed}", **resources).remote(
            shared_tasks[id(task)], pickle.dumps((baseline, seed, unit_settings)), environment, sys_path, plugins)
        pending[ref] = i
    failures = {}
    while pending:
        done, _ = ray.wait(list(pending), num_returns=1)
        i = pending.pop(done[0])
        try:
            ray.get(done[0])
        except ray.exceptions.RayTaskError as exc:
            failures[i] = str(exc.cause) if exc.cause is not None else str(exc)
        except ray.exceptions.RayError as exc:  # the worker died (out of memory, node lost)
            failures[i] = f"{units[i][0].name}/{units[i][1].name}/seed{units[i][2]} failed: {exc}"
        if progress:
            progress.finish(i, failed=i in failures)
    return failures
