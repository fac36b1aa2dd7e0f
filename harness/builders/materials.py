"""materials: ABINIT input-variable documentation (from `abipy`) and IUCr CIF dictionary definitions (from `finalcif`).

The two sources are merged into one task under one root label per source: together they give
over 2,000 queries, enough for a 1,000-query test split and a training split, where either
alone would leave too few; the math task merges SciPy and SymPy the same way. The level-1
label (the source) is therefore easy; levels 2 and 3 carry the hierarchy.

ABINIT (root "ABINIT"): one document per input variable of abinit, anaddb, aim, atdep,
multibinit and optic, titled with the variable name; the text is its markdown documentation
made plain ([[links]] become their words, citations are dropped). Query: the variable's mnemonic,
e.g. "Energy CUToff" -> ecut; a mnemonic that only spells the name again ("ACCURACY") is no
query. Label path: ABINIT -> program -> variable set (for the programs other than abinit the
variable set is the program's name). The ABINIT topics (e.g. "Planewaves_basic") are a second,
orthogonal labelling, written to corpus.jsonl as the extra field `topics`.

CIF (root "CIF"): one document per distinct definition in the core, powder, modulated-structure,
restraints and twinning dictionaries; data names that share one definition (the elements of a
matrix, say) share one untitled document. Query: the data name as words, numeric index tokens
removed, so `_atom_site_aniso_U_11` ... `_U_33` all become "atom site aniso U". The name is not
the title, as the query would then be a copy of it. Label path: CIF -> dictionary -> category
prefix (the first token of the data name: atom, cell, diffrn, refine, ...; the CIF files carry no
explicit category, and the two-token prefixes are too fine and too uneven to classify).

Both: documents under MIN_DOC_WORDS words are dropped (for CIF that removes, e.g., the journal
office items "Data items specified by the journal staff."). Identical query texts, compared
case-insensitively, become one query with all their documents. Both files are read as Python
literals with `ast`; neither package is imported.
"""

from __future__ import annotations

import ast
import html
import re
from collections import defaultdict
from pathlib import Path

from harness.builders.common import clean_text, stable_id, write_split_task
from harness.packages import package_dir

ABINIT_DATABASE = "abio/abivar_database"
CIF_DICTIONARIES = (  # (module file, variable, dictionary label)
    ("core_dict.py", "cif_core", "coreCIF"),
    ("powder_dict.py", "powder_dict", "pdCIF"),
    ("modulation_dict.py", "modulation_dict", "msCIF"),
    ("restraints_dict.py", "restraints_dict", "restraints"),
    ("twin_dict.py", "twinning_dict", "twinning"),
)
CIF_NAMESPACES = ("pd", "restr", "twin")  # a dictionary-wide first token: the category is the next one
MIN_DOC_WORDS = 10
CIF_GREEK = dict(zip("abcdefghiklmnopqrstuwxyz", "αβχδεφγηικλμνοπθρστυωξψζ"))

_WIKI_LINK = re.compile(r"\[\[\s*([^\]]*?)\s*\]\]")
_ADMONITION = re.compile(r"^\s*!!!\s*\w+(?:\s+\"[^\"]*\")?", re.M)
_TABLE_RULE = re.compile(r"^[\s|:-]*-{3,}[\s|:-]*$", re.M)
_BRA_KET = re.compile(r"<([^<>\n]*\|[^<>\n]*)>")
_EMPHASIS = re.compile(r"\*\*|__|`+|^#+\s", re.M)
_STAR = re.compile(r"\*(\S(?:[^*\n]*\S)?)\*")
_TABLE_PIPE = re.compile(r"\|(?![^⟨⟩\n]*⟩)")  # cell borders, not the bar of a bra-ket
_BULLET = re.compile(r"^\s*[*+-]\s+", re.M)


def _link_words(target: str) -> str:
    """[[ecut]] -> ecut; [[anaddb:asr]] -> asr; [[tutorial:x|the tutorial]] -> the tutorial; citations vanish."""
    if target.startswith("cite:"):
        return ""
    if "|" in target:
        return target.split("|", 1)[1]
    return target.split(":")[-1].split("#")[0]


def abinit_plain(markdown: str) -> str:
    text = _WIKI_LINK.sub(lambda m: _link_words(m.group(1)), markdown)
    text = _ADMONITION.sub("", text)
    text = _TABLE_RULE.sub("", text)
    text = _BRA_KET.sub(r"⟨\1⟩", text)  # keep <psi|H|psi> from being read as an HTML tag
    text = _STAR.sub(r"\1", _EMPHASIS.sub("", _BULLET.sub("", text)))
    text = _TABLE_PIPE.sub(" ", text.replace("\\-", "-"))
    return clean_text(text)


def _literal_assignments(path: Path) -> dict[str, ast.expr]:
    return {
        node.targets[0].id: node.value
        for node in ast.parse(path.read_text(encoding="utf-8")).body
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name)
    }


def abinit_variables(database: Path) -> list[dict]:
    """One record per variable: program, name, varset, topics, mnemonics, text (markdown)."""
    records = []
    for path in sorted(database.glob("variables_*.py")):
        assigned = _literal_assignments(path)
        program = ast.literal_eval(assigned["executable"])
        for call in assigned["variables"].elts:
            fields = {k.arg: k.value for k in call.keywords}
            record = {key: ast.literal_eval(fields[key]) for key in ("abivarname", "varset", "topics", "mnemonics", "text")}
            records.append({"program": program, **record})
    return records


def _spells_name(mnemonic: str, name: str) -> bool:
    return re.sub(r"[^a-z0-9]", "", mnemonic.lower()) == re.sub(r"[^a-z0-9]", "", name.lower())


def _abinit(database: Path) -> tuple[list[dict], dict[str, set[str]]]:
    rows, queries = [], defaultdict(set)
    doc_by_text: dict[str, str] = {}
    for var in abinit_variables(database):
        text = abinit_plain(var["text"])
        if len(text.split()) < MIN_DOC_WORDS:
            continue
        name = var["abivarname"].split("@")[0]  # anaddb's `asr@anaddb` is `asr` in its own input file
        doc_id = doc_by_text.setdefault(text, f"{var['program']}.{var['abivarname']}")  # copies share one doc
        if doc_id == f"{var['program']}.{var['abivarname']}":
            rows.append({
                "_id": doc_id, "title": name, "text": text,
                "labels": ["ABINIT", var["program"], var["varset"] or var["program"]],
                "topics": sorted(var["topics"]),
            })
        mnemonic = clean_text(var["mnemonics"])
        if mnemonic and not _spells_name(mnemonic, name):
            queries[mnemonic].add(doc_id)
    return rows, queries


def cif_plain(definition_html: str) -> str:
    """The definition inside <pre>, without the heading and the examples; CIF markup made plain."""
    body = re.search(r"<pre>(.*?)</pre>", definition_html, flags=re.S)
    text = re.sub(r"<h2>.*?</h2>", "", body.group(1) if body else "", flags=re.S)
    text = re.split(r"<h3>", text)[0]
    text = html.unescape(re.sub(r"<[^>]+>", " ", text))
    text = re.sub(r"\\([a-zA-Z])(?![a-zA-Z])", lambda m: _greek(m.group(1)), text)
    text = re.sub(r"~([^~\s]+)~", r"_\1", text)
    text = re.sub(r"\^([^^\s]+)\^", r"^\1", text)
    return clean_text(text)


def _greek(code: str) -> str:
    letter = CIF_GREEK.get(code.lower(), code)
    return letter.upper() if code.isupper() else letter


def cif_category(data_name: str) -> str:
    """The first token of the data name, or the first two where the first names the whole dictionary."""
    tokens = data_name.strip("_").split("_")
    return "_".join(tokens[:2]) if tokens[0] in CIF_NAMESPACES and len(tokens) > 1 else tokens[0]


def cif_query(data_name: str) -> str:
    return " ".join(token for token in data_name.strip("_").split("_") if token and not token.isdigit())


def _cif(folder: Path) -> tuple[list[dict], dict[str, set[str]]]:
    names_by_text: dict[tuple[str, str], list[str]] = defaultdict(list)
    for filename, variable, dictionary in CIF_DICTIONARIES:
        definitions = ast.literal_eval(_literal_assignments(folder / filename)[variable])
        for name, value in definitions.items():
            names_by_text[(dictionary, cif_plain(value))].append(name)
    rows, queries = [], defaultdict(set)
    for (dictionary, text), names in sorted(names_by_text.items()):
        if len(text.split()) < MIN_DOC_WORDS:
            continue
        first = min(names)
        doc_id = f"{dictionary}.{first}"
        rows.append({"_id": doc_id, "title": "", "text": text, "labels": ["CIF", dictionary, cif_category(first)]})
        for name in names:
            queries[cif_query(name)].add(doc_id)
    return rows, queries


def build(out: Path, seed: int, n_dev: int, n_test: int) -> None:
    abinit_rows, abinit_queries = _abinit(package_dir("abipy") / ABINIT_DATABASE)
    cif_rows, cif_queries = _cif(package_dir("finalcif") / "cif")
    texts: dict[str, str] = {}
    relevant: dict[str, dict[str, int]] = defaultdict(dict)
    for pairs in (abinit_queries, cif_queries):
        for text, docs in pairs.items():
            key = text.casefold()
            texts[key] = min(texts.get(key, text), text)
            relevant[key].update({doc_id: 1 for doc_id in docs})
    queries = {stable_id("q", key): text for key, text in texts.items()}
    by_id = {stable_id("q", key): dict(sorted(docs.items())) for key, docs in relevant.items()}
    write_split_task(out, abinit_rows + cif_rows, queries, by_id, seed, n_dev, n_test)
