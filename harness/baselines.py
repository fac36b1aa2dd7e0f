"""Baselines: `baselines/<name>.toml` names a method and sets its hyper-parameters.

A baseline without a file is its method with default settings. Unknown keys are errors with
the file and line, so a typo never silently runs the defaults. A key renamed in a config
(`harness.config_fields.stored_as`) is still read under its old name, so older files keep working.

`Baseline` answers what orchestration needs from the config (`model_slug`, `expected_cost`,
`reference`), with neutral answers for plugin configs that do not declare them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.config_fields import hashed_fields, legacy_names
from harness.errors import HarnessError, InputError
from harness.methods import METHODS
from harness.models import model_slug
from harness.paths import BASELINES_DIR
from harness.registry import did_you_mean

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


@dataclass(frozen=True)
class Baseline:
    name: str  # the config's name, as in `--methods`
    method: str  # the registered method it runs
    config: Any  # the method's Config dataclass instance
    path: Path | None = None
    # What one run asks of a scheduler (`--executor ray`): e.g. {"num_gpus": 1}. Where it runs, not what
    # it computes, so it is outside the config hash and outside equality.
    resources: dict[str, float] = field(default_factory=dict, compare=False)
    # Baselines this row is tested against on the leaderboard, besides frozen (`compare_with = [...]` in the
    # file): the reference that differs from it in one thing only. Not part of the config hash.
    compare_with: tuple[str, ...] = field(default=(), compare=False)
    # The baseline this file is written over (`extends = "..."`), if any: the reference it changes a few keys of.
    extends: str | None = field(default=None, compare=False)

    @property
    def config_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self.config)

    @property
    def config_hash(self) -> str:
        spec = json.dumps({"method": self.method, "config": hashed_fields(self.config)}, sort_keys=True)
        return hashlib.sha256(spec.encode()).hexdigest()[:8]

    @property
    def model_slug(self) -> str:
        """The model part of the result key: the config's own answer, else its `model` field, else "lexical"."""
        if hasattr(self.config, "model_slug"):
            return self.config.model_slug()
        model = getattr(self.config, "model", None)
        return model_slug(model) if model else "lexical"

    @property
    def expected_cost(self) -> int:
        """Training examples the run will see (0 if the config does not say): `--jobs` starts the largest first."""
        return self.config.expected_cost() if hasattr(self.config, "expected_cost") else 0

    @property
    def reference(self) -> str | None:
        """The baseline this one is compared against on the leaderboard (heal -> contrastive, lbr -> llm-cl)."""
        return getattr(self.config, "reference", None)

    def instantiate(self):
        return METHODS.get(self.method)()


def _line_of(text: str, key: str) -> int | None:
    for number, line in enumerate(text.splitlines(), start=1):
        if line.split("=")[0].strip() == key:
            return number
    return None


def baseline_names(directory: Path = BASELINES_DIR) -> list[str]:
    return sorted({p.stem for p in directory.glob("*.toml")} | set(METHODS.names()))


def _unknown_baseline_message(name: str, directory: Path) -> str:
    """Suggest the closest config file or method: a typo in `heal-gpu` should point at `heal-gpu`, not `heal`."""
    configs = sorted(p.stem for p in directory.glob("*.toml"))
    hint = did_you_mean(name, configs + METHODS.names())
    return (f"unknown method or baseline {name!r}{hint} (methods: {', '.join(METHODS.names())}; {len(configs)} "
            f"baseline files in {directory}: `python -m harness methods` lists them)")


def typed_value(field: dataclasses.Field, value: Any) -> Any:
    """A TOML value as the type of the field's default (annotations may be strings); HarnessError if it is not one."""
    default = field.default_factory() if field.default is dataclasses.MISSING else field.default
    if default is None:
        return value
    expected = type(default)
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if expected is tuple and isinstance(value, list):
        return tuple(value)
    if not isinstance(value, expected) or (expected is not bool and isinstance(value, bool)):
        raise HarnessError(f"`{field.name}` must be {expected.__name__}, got {value!r}")
    return value


def _coerce(path: Path, text: str, field: dataclasses.Field, value: Any) -> Any:
    try:
        return typed_value(field, value)
    except HarnessError as exc:
        raise InputError(path, _line_of(text, field.name), str(exc)) from None


RESOURCE_KEYS = ("num_cpus", "num_gpus")


def _resources(path: Path, text: str, value: Any) -> dict[str, float]:
    """The optional `resources = { num_gpus = 1, num_cpus = 2 }` table: non-negative numbers only."""
    line = _line_of(text, "resources")
    if not isinstance(value, dict):
        raise InputError(path, line, f"`resources` must be a table such as {{ num_gpus = 1 }}, got {value!r}")
    for key, amount in value.items():
        if key not in RESOURCE_KEYS:
            raise InputError(path, line, f"unknown resource `{key}` (known: {', '.join(RESOURCE_KEYS)})")
        if isinstance(amount, bool) or not isinstance(amount, (int, float)) or amount < 0:
            raise InputError(path, line, f"resource `{key}` must be a number >= 0, got {amount!r}")
    return dict(value)


# Row-specific keys: what a row is tested against or swept with belongs to that row, so `extends` never passes them on.
NOT_INHERITED = ("compare_with", "dev_sweep")
TUNED_SUFFIX = "-tuned"  # the leaderboard's row for a baseline with a `dev_sweep` (`leaderboard.TUNED`)


@dataclass
class _Source:
    """One baseline file's text and parsed keys, to name the file and line of a bad value wherever it was written."""
    path: Path
    text: str
    raw: dict[str, Any]

    def error(self, key: str, message: str) -> InputError:
        return InputError(self.path, _line_of(self.text, key), message)


def _read(path: Path) -> _Source:
    text = path.read_text(encoding="utf-8")
    try:
        return _Source(path, text, tomllib.loads(text))
    except tomllib.TOMLDecodeError as exc:
        raise InputError(path, getattr(exc, "lineno", None), f"invalid TOML ({exc})") from None


def _chain(source: _Source, directory: Path, seen: tuple[Path, ...] = ()) -> list[_Source]:
    """The files a baseline file is written over, root first and itself last (`extends = "<baseline>"`).

    `extends` writes a row as its reference plus the keys that differ, so the one variable a row isolates is
    what its file says. The resolved config is what gets hashed: writing a file this way never changes its hash.
    """
    if "extends" not in source.raw:
        return [source]
    parent = source.raw["extends"]
    parent_path = directory / f"{parent}.toml" if isinstance(parent, str) else None
    if parent_path is None or not parent_path.exists():
        known = ", ".join(sorted(p.stem for p in directory.glob("*.toml")))
        raise source.error("extends", f"`extends` must name a baseline file in {directory} (known: {known}), got {parent!r}")
    seen = seen + (source.path.resolve(),)
    if parent_path.resolve() in seen:
        cycle = " -> ".join([p.stem for p in seen] + [parent])
        raise source.error("extends", f"`extends = {parent!r}` is circular ({cycle})")
    return _chain(_read(parent_path), directory, seen) + [source]


def load_baseline(name: str, directory: Path = BASELINES_DIR, overrides: dict[str, Any] | None = None) -> Baseline:
    """Resolve a `--methods` entry. `overrides` (e.g. `--model`) apply to keys the method has."""
    path = directory / f"{name}.toml"
    chain: list[_Source] = []
    if path.exists():
        chain = _chain(_read(path), directory)
    elif name not in METHODS:
        raise HarnessError(_unknown_baseline_message(name, directory))
    own = chain[-1] if chain else None
    method = next((s.raw["method"] for s in reversed(chain) if "method" in s.raw), name)
    config_cls = METHODS.get(method).Config
    fields = {f.name: f for f in dataclasses.fields(config_cls)}
    renamed = legacy_names(config_cls)
    resources: dict[str, float] = {}
    compare_with: tuple[str, ...] = ()
    values = {}
    for source in chain:  # root first, so a file's keys override those of the file it extends
        for key, value in source.raw.items():
            if key in ("method", "extends") or (key in NOT_INHERITED and source is not own):
                continue
            if key == "resources":
                resources = _resources(source.path, source.text, value)
            elif key == "compare_with":
                compare_with = _compare_with(source.path, source.text, value)
            elif key == "dev_sweep":  # read by the leaderboard (`declared_sweeps`); checked here so a typo fails at `run`
                _baseline_names(source.path, source.text, "dev_sweep", value)
            elif key in renamed and key not in fields:
                if renamed[key] in source.raw:
                    raise source.error(key, f"`{key}` is the old name of `{renamed[key]}`: set only one of them")
                values[renamed[key]] = _coerce(source.path, source.text, fields[renamed[key]], value)
            elif key not in fields:
                raise source.error(key, f"unknown key `{key}` for method {method!r} (known: {', '.join(fields)})")
            else:
                values[key] = _coerce(source.path, source.text, fields[key], value)
    for key, value in (overrides or {}).items():
        key = key if key in fields else renamed.get(key, key)
        if key in fields and value is not None:
            values[key] = value
    return Baseline(name=name, method=method, config=config_cls(**values), path=path if path.exists() else None,
                    resources=resources, compare_with=compare_with, extends=own.raw.get("extends") if own else None)


def changed_keys(baseline: Baseline, directory: Path = BASELINES_DIR) -> dict[str, Any]:
    """The config values in which a baseline differs from the one it `extends` (empty for a file without it)."""
    if not baseline.extends:
        return {}
    parent = load_baseline(baseline.extends, directory).config_dict
    return {key: value for key, value in baseline.config_dict.items() if parent.get(key) != value}


def _compare_with(path: Path, text: str, value: Any) -> tuple[str, ...]:
    return _baseline_names(path, text, "compare_with", value)


def _baseline_names(path: Path, text: str, key: str, value: Any) -> tuple[str, ...]:
    """A `compare_with`/`dev_sweep` list, each name a baseline file beside `path` or a method: a typo would
    otherwise drop a comparison from the leaderboard without a word."""
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise InputError(path, _line_of(text, key), f"`{key}` must be a list of baseline names, got {value!r}")
    known = baseline_names(path.parent)
    for name in value:
        if name not in known and not _is_tuned_row(name, path.parent):
            raise InputError(path, _line_of(text, key), f"`{key}` names unknown baseline {name!r}{did_you_mean(name, known)}")
    return tuple(value)


def _is_tuned_row(name: str, directory: Path) -> bool:
    """`<base>-tuned`, the leaderboard's dev-selected row, exists where `<base>.toml` declares a `dev_sweep`."""
    base = directory / f"{name.removesuffix(TUNED_SUFFIX)}.toml"
    if not name.endswith(TUNED_SUFFIX) or not base.is_file():
        return False
    try:
        return bool(tomllib.loads(base.read_text(encoding="utf-8")).get("dev_sweep"))
    except tomllib.TOMLDecodeError:
        return False  # that file's own load reports it


def _declared(key: str, directory: Path) -> dict[str, tuple[str, ...]]:
    """Baseline name -> the list of baseline names its file gives under `key` (files without it left out)."""
    declared = {}
    for path in sorted(directory.glob("*.toml")):
        try:
            text = path.read_text(encoding="utf-8")
            value = tomllib.loads(text).get(key)
        except (OSError, tomllib.TOMLDecodeError):
            continue  # `run` reports a broken file; the leaderboard just falls back to the defaults
        if value is not None:
            declared[path.stem] = _baseline_names(path, text, key, value)
    return declared


def declared_comparisons(directory: Path = BASELINES_DIR) -> dict[str, tuple[str, ...]]:
    """Baseline name -> the baselines its file says it is tested against (`compare_with`), for the leaderboard."""
    return _declared("compare_with", directory)


def declared_sweeps(directory: Path = BASELINES_DIR) -> dict[str, tuple[str, ...]]:
    """Baseline name -> the baselines its file names as its dev sweep (`dev_sweep`): the leaderboard's
    `<name>-tuned` row keeps, per task and seed, whichever of them scored best on dev (`leaderboard.dev_selected`)."""
    return _declared("dev_sweep", directory)


def parse_setting(text: str) -> tuple[str, Any]:
    """`key=value` of `--set`: the value read as a TOML value (1e-4, true, "text", [1, 2]), else as a bare string."""
    key, equals, value = text.partition("=")
    if not equals or not key.strip():
        raise HarnessError(f"--set takes key=value, got {text!r}")
    try:
        return key.strip(), tomllib.loads(f"value = {value.strip()}")["value"]
    except tomllib.TOMLDecodeError:
        return key.strip(), value.strip()


def apply_settings(baselines: list[Baseline], settings: dict[str, Any]) -> list[Baseline]:
    """`--set key=value` on every baseline whose config has `key` (or its old name), checked like a file's value.

    The value becomes part of the config, hence of its hash: an overridden run never reuses the default's results.
    A key that no baseline has is an error with the nearest known key.
    """
    from harness.registry import Registry

    known = {}
    for baseline in baselines:
        names = {f.name: f.name for f in dataclasses.fields(baseline.config)}
        known.update({**names, **legacy_names(type(baseline.config))})
    for key in settings:
        if key not in known:
            message = Registry("config key", "harness.config_keys", known).unknown_message(key)
            raise HarnessError(f"--set {key}: {message}")
    updated = []
    for baseline in baselines:
        fields = {f.name: f for f in dataclasses.fields(baseline.config)}
        renamed = legacy_names(type(baseline.config))
        values = {}
        for key, value in settings.items():
            name = key if key in fields else renamed.get(key)
            if name is None:
                continue  # another selected baseline has it
            try:
                values[name] = typed_value(fields[name], value)
            except HarnessError as exc:
                raise HarnessError(f"--set {key}: {exc} (baseline {baseline.name!r})") from None
        updated.append(dataclasses.replace(baseline, config=dataclasses.replace(baseline.config, **values)) if values else baseline)
    return updated


def describe(baseline: Baseline) -> str:
    """The first comment line of the baseline's file (what it is for), or the method's docstring summary."""
    if baseline.path:
        for line in baseline.path.read_text(encoding="utf-8").splitlines():
            if line.startswith("#"):
                return line.lstrip("# ").strip()
            if line.strip():
                break
    doc = (METHODS.get(baseline.method).__doc__ or "").strip()
    return doc.splitlines()[0] if doc else ""
