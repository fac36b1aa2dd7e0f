"""cyber-cwe: MITRE CWE v4.14 (as shipped in `cwe2` 3.0.0).

Corpus: the weaknesses that are not deprecated, the name as title and the description plus
extended description as text (demonstrative code and observed examples are left out: the
latter are the queries). Documents under MIN_DOC_WORDS words are dropped.

Queries: the observed examples, short human-written descriptions of real vulnerabilities (CVEs)
that CWE lists under a weakness; the weaknesses the same text is listed under are relevant.
Identical texts (case-insensitive) become one query.

Label path: three levels of the Research Concepts view (CWE-1000): pillar -> level-2 ->
level-3 ancestor-or-self, along the parent that CWE itself marks as primary (`Ordinal="Primary"`
on the ChildOf relation; every weakness has exactly one). Shallower weaknesses repeat
themselves to fill the path.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path

from harness.builders.common import clean_text, stable_id, write_split_task
from harness.packages import package_dir

CATALOG = "database_v49/cwec_v4.14.xml"
RESEARCH_VIEW = "1000"
LABEL_DEPTH = 3
MIN_DOC_WORDS = 10
MIN_QUERY_WORDS = 4


def _text(element: ET.Element | None) -> str:
    return clean_text(" ".join(element.itertext())) if element is not None else ""


def _primary_parent(weakness: ET.Element, ns: dict[str, str]) -> str | None:
    for relation in weakness.iterfind("c:Related_Weaknesses/c:Related_Weakness", ns):
        if relation.get("Nature") == "ChildOf" and relation.get("View_ID") == RESEARCH_VIEW and relation.get("Ordinal") == "Primary":
            return f"CWE-{relation.get('CWE_ID')}"
    return None


def label_paths(parents: dict[str, str | None], names: dict[str, str]) -> dict[str, list[str]]:
    """CWE id -> the first LABEL_DEPTH "CWE-n Name" labels from its pillar down, itself repeated if shallower."""
    paths = {}
    for cwe in parents:
        chain, seen = [cwe], {cwe}
        while parents.get(chain[-1]) and parents[chain[-1]] in names and parents[chain[-1]] not in seen:
            chain.append(parents[chain[-1]])
            seen.add(chain[-1])
        cut = chain[::-1][:LABEL_DEPTH]
        cut += [cwe] * (LABEL_DEPTH - len(cut))
        paths[cwe] = [f"{c} {names[c]}" for c in cut]
    return paths


def build(out: Path, seed: int, n_dev: int, n_test: int) -> None:
    root = ET.parse(package_dir("cwe2") / CATALOG).getroot()
    ns = {"c": root.tag.split("}")[0][1:]}
    weaknesses = [w for w in root.iterfind("c:Weaknesses/c:Weakness", ns) if w.get("Status") != "Deprecated"]
    names = {f"CWE-{w.get('ID')}": w.get("Name") for w in weaknesses}
    parents = {f"CWE-{w.get('ID')}": _primary_parent(w, ns) for w in weaknesses}
    paths = label_paths(parents, names)
    corpus, examples, display = [], defaultdict(dict), {}
    for weakness in weaknesses:
        cwe = f"CWE-{weakness.get('ID')}"
        parts = (_text(weakness.find("c:Description", ns)), _text(weakness.find("c:Extended_Description", ns)))
        text = " ".join(p for p in parts if p)
        if len(text.split()) < MIN_DOC_WORDS:
            continue
        corpus.append({"_id": cwe, "title": names[cwe], "text": text, "labels": paths[cwe]})
        for example in weakness.iterfind("c:Observed_Examples/c:Observed_Example", ns):
            query = _text(example.find("c:Description", ns))
            if len(query.split()) >= MIN_QUERY_WORDS:
                examples[query.casefold()][cwe] = 1
                display.setdefault(query.casefold(), query)  # the first spelling in catalog order
    queries = {stable_id("q", key): display[key] for key in examples}
    relevant = {stable_id("q", key): dict(sorted(docs.items())) for key, docs in examples.items()}
    write_split_task(out, corpus, queries, relevant, seed, n_dev, n_test)
