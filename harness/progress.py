"""Progress across a grid of runs: `[i/N]` lines with elapsed time and an estimate of what is left, and a
summary table of the runs just finished, skipped or failed, with the path of each result and model
(as lm-evaluation-harness prints one at the end of an evaluation)."""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path


def _clock(seconds: float) -> str:
    minutes, seconds = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes:02d}:{seconds:02d}"


def _read(path: Path) -> dict:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


@dataclass
class GridProgress:
    """One grid: `units` are (task, baseline, seed); `paths` their result files; `workers` run at once."""

    units: list
    paths: list[Path]
    workers: int = 1
    started: float = field(default_factory=time.perf_counter)
    status: dict[int, str] = field(default_factory=dict)  # unit index -> skipped | done | failed
    seconds: dict[str, list[float]] = field(default_factory=dict)  # baseline -> wall times of its finished runs

    def name(self, i: int) -> str:
        task, baseline, seed = self.units[i]
        return f"{task.name}/{baseline.name}/seed{seed}"

    def skip(self, i: int) -> None:
        self.status[i] = "skipped"

    def start(self, i: int) -> None:
        self._say(f"start {self.name(i)}")

    def finish(self, i: int, failed: bool = False) -> None:
        self.status[i] = "failed" if failed else "done"
        if not failed:
            wall = _read(self.paths[i]).get("run_info", {}).get("wall_time_s")
            if wall is not None:
                self.seconds.setdefault(self.units[i][1].name, []).append(float(wall))
        self._say(f"{self.status[i]} {self.name(i)}")

    def remaining_seconds(self) -> float | None:
        """Each open run is estimated by its baseline's mean wall time so far (else all runs' mean), shared by the workers."""
        everything = [s for times in self.seconds.values() for s in times]
        if not everything:
            return None
        overall = sum(everything) / len(everything)
        open_units = [u for i, u in enumerate(self.units) if i not in self.status]
        estimate = sum(sum(self.seconds.get(u[1].name, [overall])) / len(self.seconds.get(u[1].name, [overall]))
                       for u in open_units)
        return estimate / max(1, min(self.workers, len(open_units) or 1))

    def _say(self, what: str) -> None:
        left = self.remaining_seconds()
        eta = f", ~{_clock(left)} left" if left is not None and len(self.status) < len(self.units) else ""
        elapsed = _clock(time.perf_counter() - self.started)
        print(f"[harness] [{len(self.status)}/{len(self.units)}] {elapsed} elapsed{eta}: {what}", file=sys.stderr, flush=True)

    def summary(self) -> str:
        """A table of every unit: status, main score, result file and model folder."""
        rows = [("run", "status", "score", "result", "model")]
        for i in range(len(self.units)):
            data = _read(self.paths[i]) if self.status.get(i) in ("done", "skipped") else {}
            main = data.get("run_info", {}).get("main_score")
            score = data.get("scores", {}).get("test", [{}])[0].get(main) if main else None
            model = data.get("train_info", {}).get("model_path") or data.get("train_info", {}).get("adapter") or "–"
            rows.append((self.name(i), self.status.get(i, "not run"), f"{score:.4f}" if score is not None else "–",
                         str(self.paths[i]) if data else "–", str(model)))
        widths = [max(len(row[c]) for row in rows) for c in range(4)]
        return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row[:4], widths)) + "  " + row[4] for row in rows)
