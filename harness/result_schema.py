"""What a result JSON must hold before the leaderboard counts it: fields of the right types, and scores
that are finite numbers within their metric's range.

Where the file lies (its name must match its key) is checked by `results.scan_results`, which reads the files.
"""

from __future__ import annotations

import math
import re
import reprlib
from typing import Any

KEY_FIELDS = {"task": str, "baseline": str, "model": str, "config_hash": str, "profile": str, "seed": int}
BLOCK_LABELS = {"hf_subset": str, "languages": list}  # mteb's non-numeric fields of a score block
# Shares, by name: every retrieval, classification, clustering and RAG-proxy metric the harness writes.
# Anything else (a count, seconds) only has to be finite.
RATIO_METRIC = re.compile(r"(^|_)(ndcg|mrr|map|recall|precision|hit_rate|accuracy|f1|v_measure|rate|consistency)(_|$)"
                          r"|^(context|answer)_")


class InvalidResult(ValueError):
    """A result file the leaderboard must not count; the message says why."""


def validate_result(data: dict[str, Any]) -> None:
    """Raise `InvalidResult` naming the first field that is missing, of the wrong type, or out of range."""
    _field(data, "task_name", str)
    _field(data, "dataset_revision", str)
    _finite(_field(data, "evaluation_time", (int, float)), "evaluation_time")
    run_info = _field(data, "run_info", dict)
    key = _field(run_info, "key", dict, "run_info.")
    for name, kind in KEY_FIELDS.items():
        _field(key, name, kind, "run_info.key.")
    if data["task_name"] != key["task"]:
        raise InvalidResult(f"task_name {data['task_name']!r} differs from run_info.key.task {key['task']!r}")
    main_score = _field(run_info, "main_score", str, "run_info.")
    scores = _field(data, "scores", dict)
    if not scores:
        raise InvalidResult("scores holds no split")
    for split, blocks in scores.items():
        if not isinstance(blocks, list) or not blocks:
            raise InvalidResult(f"scores.{split} must be a non-empty list of score blocks")
        for i, block in enumerate(blocks):
            _check_block(block, f"scores.{split}[{i}]", main_score)
    per_query = _field(data, "per_query", dict)
    for metric, values in per_query.items():
        if not isinstance(values, dict):
            raise InvalidResult(f"per_query.{metric} must be an object of query id to score")
        for qid, value in values.items():
            _score(metric, value, f"per_query.{metric}.{qid}")


def _check_block(block: Any, where: str, main_score: str) -> None:
    if not isinstance(block, dict):
        raise InvalidResult(f"{where} must be an object")
    if main_score not in block:
        raise InvalidResult(f"run_info.main_score {main_score!r} is not a metric in {where}")
    if "main_score" not in block:
        raise InvalidResult(f"missing field {where}.main_score")
    for name, value in block.items():
        if name in BLOCK_LABELS:
            _field(block, name, BLOCK_LABELS[name], f"{where}.")
        else:
            _score(main_score if name == "main_score" else name, value, f"{where}.{name}")
    if block["main_score"] != block[main_score]:
        raise InvalidResult(f"{where}.main_score = {block['main_score']!r} differs from {where}.{main_score} = {block[main_score]!r}")


def _score(metric: str, value: Any, where: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidResult(f"{where} must be a number, got {reprlib.repr(value)}")
    _finite(value, where)
    if RATIO_METRIC.search(metric) and not 0.0 <= value <= 1.0:
        raise InvalidResult(f"{where} = {value!r} is outside [0, 1]")


def _finite(value: float, where: str) -> None:
    if not math.isfinite(value):
        raise InvalidResult(f"{where} = {value!r} is not finite")


def _field(mapping: dict[str, Any], name: str, kind: type | tuple[type, ...], prefix: str = "") -> Any:
    if name not in mapping:
        raise InvalidResult(f"missing field {prefix}{name}")
    value = mapping[name]
    if isinstance(value, bool) or not isinstance(value, kind):  # JSON true is an int to Python, never a seed or a time
        expected = {str: "a string", int: "an integer", dict: "an object", list: "a list"}.get(kind, "a number")
        raise InvalidResult(f"{prefix}{name} must be {expected}, got {reprlib.repr(value)}")
    return value
