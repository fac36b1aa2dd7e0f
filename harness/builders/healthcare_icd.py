"""healthcare-icd: the ICD-10-CM tabular list (April 2026 release, as shipped in `simple-icd-10-cm` 1.5.0).

Corpus: one document per three-character category (e.g. I21), titled with its description;
the text is its "includes" notes followed by the descriptions of its direct subcategories.
Documents under MIN_DOC_WORDS words are dropped.

Queries: the inclusion terms, i.e. the synonyms and narrower clinical phrasings that the tabular
list files under a code, from every code below a category; the category is relevant. Inclusion
terms are not part of any document, so a query never appears verbatim in its category's text
unless a subcategory's description says the same. Identical terms (case-insensitive) become one
query with all their categories.

Label path: chapter -> block -> category (every category sits in exactly one block and chapter;
the release has no nested blocks above categories), so level 3 names the document itself.
"""

from __future__ import annotations

import warnings
from collections import defaultdict
from pathlib import Path

from harness.builders.common import clean_text, stable_id, write_split_task

MIN_DOC_WORDS = 5


def _category_rows(icd) -> list[dict]:
    rows = []
    for code in dict.fromkeys(icd.get_all_codes(True)):  # a block and its only category may share a code
        if not icd.is_category(code):
            continue
        block, chapter = icd.get_ancestors(code)
        parts = [*icd.get_includes(code), *(icd.get_description(child) for child in icd.get_children(code))]
        text = clean_text("; ".join(parts))
        if len(text.split()) < MIN_DOC_WORDS:
            continue
        labels = [icd.get_description(chapter), icd.get_description(block), f"{code} {icd.get_description(code)}"]
        rows.append({"_id": code, "title": clean_text(icd.get_description(code)), "text": text, "labels": labels})
    return rows


def _inclusion_terms(icd, categories: set[str]) -> dict[str, set[str]]:
    """Inclusion term -> the categories it is filed under (through any code below them)."""
    terms: dict[str, set[str]] = defaultdict(set)
    for code in dict.fromkeys(icd.get_all_codes(True)):
        if not (icd.is_category(code) or icd.is_subcategory(code)):
            continue
        category = code.split(".")[0]
        if category in categories:
            for term in icd.get_inclusion_term(code):
                terms[clean_text(term)].add(category)
    return terms


def build(out: Path, seed: int, n_dev: int, n_test: int) -> None:
    with warnings.catch_warnings():  # its data loading uses importlib.resources calls deprecated in 3.11
        warnings.simplefilter("ignore", DeprecationWarning)
        import simple_icd_10_cm as icd  # code plus its data file; importing it parses the XML

    corpus = _category_rows(icd)
    terms = _inclusion_terms(icd, {row["_id"] for row in corpus})
    texts: dict[str, str] = {}
    relevant: dict[str, dict[str, int]] = defaultdict(dict)
    for term, categories in terms.items():
        if term:
            key = term.casefold()
            texts[key] = min(texts.get(key, term), term)
            relevant[key].update({c: 1 for c in categories})
    queries = {stable_id("q", key): text for key, text in texts.items()}
    by_id = {stable_id("q", key): dict(sorted(docs.items())) for key, docs in relevant.items()}
    write_split_task(out, corpus, queries, by_id, seed, n_dev, n_test)
