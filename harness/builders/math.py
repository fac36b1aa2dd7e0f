"""math: docstrings of the public functions and classes of SciPy and SymPy (the installed versions).

Corpus: one document per documented object, titled with its qualified name. The text is the
docstring without its summary and without the sections in DROPPED_SECTIONS (Examples, which are
mostly code, plus See Also, References and the generated Methods lists that every SciPy
distribution repeats); doctest lines, reST roles, directives, citations and URLs are stripped.
Documents under MIN_DOC_WORDS words are dropped; so are exceptions and warnings.

Query: the summary, i.e. the first sentence of the docstring's first paragraph (a leading call
signature, as SciPy's ufuncs have, is skipped). Identical summaries (case-insensitive) become one
query with all their documents; so do objects whose cleaned text is identical (aliases).

Label path, three levels: library -> subpackage -> documented section.
- SciPy: the objects listed in each subpackage's module docstring, labelled with that docstring's
  section heading, e.g. SciPy -> scipy.signal -> Filter design. Legacy or generated namespaces
  (fftpack, misc, odr, linalg.blas/lapack, stats.mstats) are left out.
- SymPy has no such sections, so level 3 is the defining module: SymPy -> sympy.polys ->
  sympy.polys.polytools (physics one level deeper: sympy.physics.optics -> its module).

Docstrings change between releases: the card pins scipy and sympy under [sources] so the cache
key changes with them. Known bias: a summary often repeats words of the body or the name.
"""

from __future__ import annotations

import importlib
import inspect
import re
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from harness.builders.common import clean_text, stable_id, write_split_task

SCIPY_MODULES = (
    "cluster.hierarchy", "cluster.vq", "constants", "datasets", "differentiate", "fft", "integrate",
    "interpolate", "io", "linalg", "linalg.interpolative", "ndimage", "optimize", "signal",
    "signal.windows", "sparse", "sparse.csgraph", "sparse.linalg", "spatial", "spatial.distance",
    "spatial.transform", "special", "stats", "stats.contingency", "stats.qmc", "stats.sampling",
)
SYMPY_SUBPACKAGES = (
    "algebras", "assumptions", "calculus", "categories", "combinatorics", "concrete", "core", "crypto",
    "diffgeom", "discrete", "functions", "geometry", "holonomic", "integrals", "liealgebras", "logic",
    "matrices", "ntheory", "polys", "series", "sets", "simplify", "solvers", "stats", "tensor", "vector",
    "physics.biomechanics", "physics.continuum_mechanics", "physics.control", "physics.mechanics",
    "physics.optics", "physics.quantum", "physics.units", "physics.vector",
)
DROPPED_SECTIONS = ("examples", "example", "see also", "references", "methods")
MIN_DOC_WORDS = 20
MIN_QUERY_WORDS = 2
BOILERPLATE_MIN_DOCS = 5

_UNDERLINE = re.compile(r"\s*([=\-~^*+#])\1{2,}\s*")
_AUTOSUMMARY_ENTRY = re.compile(r"^ {3}([A-Za-z_][\w.]*)\b(?!\s*:)")
_SIGNATURE = re.compile(r"^[\w.]+\(.*\)(\s*->.*)?$")
_ROLE = re.compile(r":([\w:]+):`([^`]*)`")
_REFERENCE_LINK = re.compile(r"`([^`<]+?)\s*<[^>]+>`_{1,2}")
_LITERAL = re.compile(r"`{1,2}([^`]+)`{1,2}_{0,2}")
_DIRECTIVE = re.compile(r"^\s*\.\. (?:[\w:-]+::|_[^:]+:).*$", re.M)  # directives and link targets
_NAMED_REFERENCE = re.compile(r"\b([A-Za-z]\w*[A-Za-z0-9])_(?=[\s.,;:)]|$)")
_LITERAL_BLOCK = re.compile(r"::$", re.M)
_CITATION = re.compile(r"\[[\w.-]+\]_|^\s*\.\. \[[\w.-]+\]", re.M)
_URL = re.compile(r"<?https?://\S+>?")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z(`$\\])")
_SET_OF_NAMES = re.compile(r"\{('[\w.]*'(?:, '[\w.]*')+)\}")
_MOD_ROLE = re.compile(r"\(?:mod:`[^`]*`\)|:mod:`[^`]*`")


@dataclass(frozen=True)
class Documented:
    """One public object: where it is documented and its raw docstring."""

    doc_id: str
    labels: tuple[str, str, str]
    docstring: str


def _sections(lines: list[str]) -> list[tuple[str, list[str]]]:
    """(heading, body lines) in order; text before the first heading has the heading ''."""
    sections: list[tuple[str, list[str]]] = [("", [])]
    i = 0
    while i < len(lines):
        following = lines[i + 1] if i + 1 < len(lines) else ""
        if lines[i].strip() and not _UNDERLINE.fullmatch(lines[i]) and _UNDERLINE.fullmatch(following):
            sections.append((lines[i].strip(), []))
            i += 2
            continue
        sections[-1][1].append(lines[i])
        i += 1
    return sections


def _without_doctests(lines: list[str]) -> list[str]:
    """Drop `>>>` blocks up to the next blank line (their outputs included)."""
    kept, in_doctest = [], False
    for line in lines:
        if line.lstrip().startswith(">>>"):
            in_doctest = True
        elif not line.strip():
            in_doctest = False
        if not in_doctest:
            kept.append(line)
    return kept


def _role_text(role: str, target: str) -> str:
    """:math: keeps its formula; other roles keep their text: `text <target>` -> text, `~a.b.c` -> c."""
    if role == "math":
        return target
    target = re.sub(r"\s*<[^<>]*>$", "", target)
    return target[1:].split(".")[-1] if target.startswith("~") else target


def _plain(text: str) -> str:
    """reST to plain words: roles and literals keep their text; directives, citations, URLs go."""
    # Docstrings generated at import time print sets of argument names in hash order: sort them.
    text = _SET_OF_NAMES.sub(lambda m: "{" + ", ".join(sorted(m.group(1).split(", "))) + "}", text)
    text = _DIRECTIVE.sub("", text)
    text = _CITATION.sub("", text)
    text = _REFERENCE_LINK.sub(r"\1", text)
    text = _ROLE.sub(lambda m: _role_text(m.group(1), m.group(2)), text)
    text = _LITERAL.sub(r"\1", text)
    text = _NAMED_REFERENCE.sub(r"\1", text)
    text = _LITERAL_BLOCK.sub(":", text)
    text = _URL.sub("", text)
    text = re.sub(r"<(?=[A-Za-z/])", "< ", text)  # math such as <x, y> is not an HTML tag
    return clean_text(text)


def split_docstring(docstring: str) -> tuple[str, list[str]]:
    """(summary, body paragraphs): the first sentence of the first paragraph, and the kept rest as plain text."""
    sections = _sections(inspect.cleandoc(docstring).splitlines())
    paragraphs = _paragraphs(_without_doctests(sections[0][1]))
    while paragraphs and _SIGNATURE.match(" ".join(paragraphs[0].split())):
        paragraphs = paragraphs[1:]
    if not paragraphs:
        return "", []
    first, *rest_of_first = _SENTENCE_END.split(" ".join(paragraphs[0].split()), maxsplit=1)
    body = [*rest_of_first, *paragraphs[1:]]
    for heading, lines in sections[1:]:
        if heading.lower() not in DROPPED_SECTIONS:
            body += _paragraphs(_without_doctests(lines))
    return _plain(first).rstrip(":"), [text for text in map(_plain, body) if text]


def _paragraphs(lines: list[str]) -> list[str]:
    return [p for p in "\n".join(lines).split("\n\n") if p.strip()]


def _own_docstring(obj: object) -> str:
    doc = getattr(obj, "__doc__", None)
    return doc if isinstance(doc, str) and doc.strip() else ""


def _is_error(obj: object) -> bool:
    return isinstance(obj, type) and issubclass(obj, (BaseException, Warning))


def _section_title(heading: str) -> str:
    return " ".join(_MOD_ROLE.sub("", heading).split()).strip(" :")


def scipy_objects() -> list[Documented]:
    """Objects listed in SciPy's module docstrings, labelled with the section they are listed under."""
    found: list[Documented] = []
    for name in SCIPY_MODULES:
        module = importlib.import_module(f"scipy.{name}")
        section = None
        in_autosummary = False
        lines = (module.__doc__ or "").splitlines()
        for i, line in enumerate(lines):
            following = lines[i + 1] if i + 1 < len(lines) else ""
            if line.strip() and not _UNDERLINE.fullmatch(line) and _UNDERLINE.fullmatch(following):
                section = _section_title(line)
                continue
            if line.startswith(".. autosummary::"):
                in_autosummary = True
                continue
            if line.strip() and not line.startswith(" "):
                in_autosummary = False
            entry = _AUTOSUMMARY_ENTRY.match(line)
            if in_autosummary and section and entry:
                obj = getattr(module, entry.group(1).split(".")[-1], None)
                if obj is not None and not _is_error(obj) and _own_docstring(obj):
                    doc_id = f"scipy.{name}.{entry.group(1)}"
                    found.append(Documented(doc_id, ("SciPy", f"scipy.{name}", section), _own_docstring(obj)))
    return found


def _sympy_subpackage(module_name: str) -> str:
    parts = module_name.split(".")
    return ".".join(parts[:3] if parts[1:2] == ["physics"] else parts[:2])


def sympy_objects() -> list[Documented]:
    """Public functions and classes of SymPy's mathematical subpackages, labelled by their module."""
    allowed = {f"sympy.{name}" for name in SYMPY_SUBPACKAGES}
    found: list[Documented] = []
    for namespace in ("sympy", *(f"sympy.{name}" for name in SYMPY_SUBPACKAGES)):
        module = importlib.import_module(namespace)
        for attribute in sorted(getattr(module, "__all__", ())):
            obj = getattr(module, attribute, None)
            if not (inspect.isfunction(obj) or inspect.isclass(obj)) or _is_error(obj):
                continue
            module_name = getattr(obj, "__module__", "") or ""
            subpackage = _sympy_subpackage(module_name)
            if subpackage in allowed and _own_docstring(obj):
                doc_id = f"{module_name}.{obj.__qualname__}"
                found.append(Documented(doc_id, ("SymPy", subpackage, module_name), _own_docstring(obj)))
    return found


def _boilerplate(bodies: list[list[str]]) -> set[str]:
    """Paragraphs repeated verbatim in BOILERPLATE_MIN_DOCS or more docstrings (generated notices)."""
    counts = Counter(p for body in bodies for p in set(body))
    return {p for p, n in counts.items() if n >= BOILERPLATE_MIN_DOCS}


def _examples(objects: list[Documented]) -> tuple[list[dict], dict[str, dict[str, int]], dict[str, str]]:
    """Corpus rows, query key -> relevant docs, and query key -> display text."""
    first_mention: dict[str, Documented] = {}
    for item in objects:
        first_mention.setdefault(item.doc_id, item)
    unique = list(first_mention.values())
    parts = [split_docstring(item.docstring) for item in unique]
    shared = _boilerplate([body for _, body in parts])
    rows: list[dict] = []
    doc_by_text: dict[str, str] = {}
    relevant: dict[str, dict[str, int]] = {}
    display: dict[str, str] = {}
    for item, (summary, paragraphs) in zip(unique, parts):
        body = " ".join(p for p in paragraphs if p not in shared)
        if len(body.split()) < MIN_DOC_WORDS or len(summary.split()) < MIN_QUERY_WORDS:
            continue
        doc_id = doc_by_text.setdefault(body, item.doc_id)
        if doc_id == item.doc_id:
            rows.append({"_id": doc_id, "title": doc_id, "text": body, "labels": list(item.labels)})
        key = summary.casefold()
        display[key] = min(display.get(key, summary), summary)
        relevant.setdefault(key, {})[doc_id] = 1
    return rows, relevant, display


def build(out: Path, seed: int, n_dev: int, n_test: int) -> None:
    with warnings.catch_warnings():  # importing every namespace raises deprecation notices we do not act on
        warnings.simplefilter("ignore")
        objects = scipy_objects() + sympy_objects()
    corpus, relevant, display = _examples(objects)
    queries = {stable_id("q", key): display[key] for key in display}
    by_id = {stable_id("q", key): docs for key, docs in relevant.items()}
    write_split_task(out, corpus, queries, by_id, seed, n_dev, n_test)
