"""Task cards (`tasks/<name>.toml`): the declaration a built-in or plugin task is made from."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

from harness.errors import InputError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


@dataclass(frozen=True)
class Profile:
    """A capped view of a task for small machines; `None` means no cap."""

    max_test_queries: int | None = None
    max_dev_queries: int | None = None
    max_train_queries: int | None = None
    max_corpus: int | None = None


@dataclass(frozen=True)
class TaskCard:
    name: str
    domain: str
    description: str
    builder: str  # "module:function" called as build(out, seed=, n_dev=, n_test=)
    path: Path
    builder_version: int = 1
    main_score: str = "ndcg_at_10"
    mteb_domains: tuple[str, ...] = ()
    license: str = ""
    notice: str = ""
    label_levels: tuple[str, ...] = ()
    label_depth: int | None = None  # fixed depth, checked on load; None = variable
    sources: dict[str, str] = field(default_factory=dict)  # pip distribution -> version the card was made with
    split_seed: int = 0
    n_dev: int = 500
    n_test: int = 1000
    profiles: dict[str, Profile] = field(default_factory=dict)
    # Prose for the data card (tasks/<name>.md); optional, so plugin cards need not write it.
    citation: str = ""
    build_notes: str = ""
    biases: str = ""

    def profile(self, name: str) -> Profile:
        return Profile() if name == "full" else self.profiles.get(name, Profile())


_TOP_KEYS = {
    "name", "domain", "description", "builder", "builder_version", "main_score", "mteb_domains",
    "license", "notice", "label_levels", "label_depth", "sources", "splits", "profiles",
    "citation", "build_notes", "biases",
}


def _line_of(text: str, key: str) -> int | None:
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip().startswith(f"{key} ") or line.strip().startswith(f"{key}="):
            return number
    return None


def load_card(path: Path) -> TaskCard:
    text = path.read_text(encoding="utf-8")
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(path, getattr(exc, "lineno", None), f"invalid TOML ({exc})") from None
    unknown = set(raw) - _TOP_KEYS
    if unknown:
        key = sorted(unknown)[0]
        raise InputError(path, _line_of(text, key), f"unknown key `{key}` (known: {', '.join(sorted(_TOP_KEYS))})")
    for key in ("name", "domain", "description", "builder"):
        if key not in raw:
            raise InputError(path, None, f"missing `{key}`")
    splits = raw.get("splits", {})
    try:
        profiles = {name: Profile(**spec) for name, spec in raw.get("profiles", {}).items()}
    except TypeError as exc:
        raise InputError(path, None, f"bad profile: {exc}") from None
    return TaskCard(
        name=raw["name"],
        domain=raw["domain"],
        description=raw["description"],
        builder=raw["builder"],
        path=path,
        builder_version=int(raw.get("builder_version", 1)),
        main_score=raw.get("main_score", "ndcg_at_10"),
        mteb_domains=tuple(raw.get("mteb_domains", ())),
        license=raw.get("license", ""),
        notice=raw.get("notice", ""),
        label_levels=tuple(raw.get("label_levels", ())),
        label_depth=raw.get("label_depth"),
        sources=dict(raw.get("sources", {})),
        split_seed=int(splits.get("seed", 0)),
        n_dev=int(splits.get("dev", 500)),
        n_test=int(splits.get("test", 1000)),
        profiles=profiles,
        citation=raw.get("citation", "").strip(),
        build_notes=raw.get("build_notes", "").strip(),
        biases=raw.get("biases", "").strip(),
    )
