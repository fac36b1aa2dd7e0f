"""results/provenance.md: how every stored result was produced, read from the result files themselves.

Each result records the command that made it (`run_info.command`), when (`created`), how long it took
(`wall_time_s`) and on what (`meta_info.hardware`), so this table, rewritten with the leaderboard, cannot drift
from the numbers the way a hand-written list of commands does. Runs are grouped by their command with the flags
that do not change what is computed (`--out`, `--no-progress`) left out; a result stored under another name than
the one it ran as (`run_info.renamed_from`) says so.
"""

from __future__ import annotations

import shlex
from collections import defaultdict

from harness.leaderboard import precision_summary, run_precision
from harness.results import Result

# flag -> number of values it takes; where results go and how progress is shown do not change a number
NOT_COMPUTED = {"--out": 1, "--no-progress": 0}
NOT_RECORDED = "(not recorded)"
SEEDS = ("--seeds", "--seed")  # each seed is its own run: commands that differ only here are one row


def reproducing_command(command: str, seeds: list[int] | None = None) -> str:
    """`command` without the flags that only say where results go or how progress is shown; with `seeds`, its
    `--seeds` replaced by those (left out when they are the default, seed 0 alone)."""
    drop = {**NOT_COMPUTED, **({flag: 1 for flag in SEEDS} if seeds is not None else {})}
    try:
        words, kept, skip = shlex.split(command), [], 0
    except ValueError:  # not shell syntax (hand-edited): shown as stored
        return command
    for word in words:
        if skip:
            skip -= 1
        elif word in drop:
            skip = drop[word]
        elif not any(word.startswith(flag + "=") for flag in drop):
            kept.append(word)
    if seeds and sorted(set(seeds)) != [0]:
        kept += ["--seeds", ",".join(map(str, sorted(set(seeds))))]
    return shlex.join(kept)


def _machine(result: Result) -> str:
    hardware = result.meta_info.get("hardware", {})
    device = hardware.get("gpu") or hardware.get("device", "?")
    cores = f" ×{hardware['cpu_count']} cores" if device == "cpu" and hardware.get("cpu_count") else ""
    threads = hardware.get("torch_threads")
    return device + cores + (f", {threads} thread{'s' if threads != 1 else ''}" if threads else "")


def _seeds(seeds: list[int]) -> str:
    seeds = sorted(set(seeds))
    if len(seeds) > 2 and seeds == list(range(seeds[0], seeds[-1] + 1)):
        return f"{seeds[0]}–{seeds[-1]}"
    return ",".join(map(str, seeds))


def _runs(results: list[Result]) -> str:
    """`task: baseline seeds` per task, e.g. `cyber: heal 0–2, lbr 1; math: heal 0`."""
    by_task: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    for r in results:
        renamed = r.run_info.get("renamed_from")
        name = r.key.baseline + (f" (ran as {renamed})" if renamed else "")
        by_task[r.key.task][name].append(r.key.seed)
    return "; ".join(f"{task}: " + ", ".join(f"{name} {_seeds(seeds)}" for name, seeds in sorted(rows.items()))
                     for task, rows in sorted(by_task.items()))


def _minutes(seconds: list[float]) -> str:
    low, high = min(seconds) / 60, max(seconds) / 60
    return f"{low:.1f}" if round(low, 1) == round(high, 1) else f"{low:.1f}–{high:.1f}"


def provenance_markdown(results: list[Result]) -> str:
    groups: dict[str, list[Result]] = defaultdict(list)
    for r in results:
        command = r.run_info.get("command")
        groups[reproducing_command(command, seeds=[]) if command else NOT_RECORDED].append(r)
    lines = ["# How each result was produced", "",
             "Read from the result files (`run_info.command`, `created`, `wall_time_s`, `meta_info.hardware`) by "
             "`python -m harness table`; `--out` and `--no-progress` left out of the commands, and commands that differ only in "
             "`--seeds` merged (each seed is its own run). Minutes are each run's "
             "wall time (other runs may have shared the machine); precision is what the runs computed in (as in the "
             "leaderboard; `?`: not recorded). A command rerun later skips the results it finds, so a command listed "
             "once may have produced its rows over several sessions.", "",
             "| command | rows (task: baseline seeds) | runs | minutes per run | machine | precision | created |",
             "|---|---|---:|---:|---|---|---|"]
    for command, runs in sorted(groups.items(), key=lambda item: min(r.run_info.get("created", "") for r in item[1])):
        dates = sorted({r.run_info.get("created", "")[:10] for r in runs})
        machines = " / ".join(sorted({_machine(r) for r in runs}))
        seconds = [r.run_info["wall_time_s"] for r in runs if r.run_info.get("wall_time_s") is not None]
        precision = precision_summary(run_precision(r) for r in runs) or "–"
        command = reproducing_command(command, seeds=[r.key.seed for r in runs]) if command != NOT_RECORDED else command
        lines.append(f"| `{command}` | {_runs(runs)} | {len(runs)} | {_minutes(seconds) if seconds else '–'} | {machines} | "
                     f"{precision} | {dates[0]}{' – ' + dates[-1] if len(dates) > 1 else ''} |")
    return "\n".join(lines) + "\n"
