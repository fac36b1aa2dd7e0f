"""make-queries: synthetic queries and qrels for a bare corpus, cached, filtered, in a folder `run --task-dir` loads."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch

from conftest import tiny_corpus
from harness.cli import main
from harness.errors import HarnessError
from harness.synthetic_queries import QuerySettings, make_queries, synthetic_metadata
from harness.task import load_task_folder
from llm_fixtures import save_tiny_llama

NAMES = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet", "kilo", "lima"]


def write_corpus(folder: Path, records: list[dict]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "corpus.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return folder


@pytest.fixture
def bare_tiny_corpus(tmp_path) -> Path:
    """The first 12 documents of the tiny task, without queries or qrels."""
    return write_corpus(tmp_path / "bare", tiny_corpus()[0][:12])


@pytest.fixture
def named_corpus(tmp_path) -> Path:
    """12 documents, each about one word no other document has."""
    return write_corpus(tmp_path / "named", [
        {"_id": f"d-{name}", "text": f"{name} appears in this note: the {name} procedure and its {name} settings"}
        for name in NAMES
    ])


class StubGenerator:
    """Per document (read from the prompt), variant by variant: a query that finds it, one that finds another
    document, the first again in other case and spacing, and one of two words. Records every prompt."""

    fingerprint = "stub-v1"

    def __init__(self):
        self.prompts: list[str] = []

    def __call__(self, prompts: list[str]) -> list[str]:
        texts = []
        for prompt in prompts:
            name = prompt.split()[0]  # the prompt starts with the document text
            other = NAMES[(NAMES.index(name) + 1) % len(NAMES)]
            variant = self.prompts.count(prompt)
            self.prompts.append(prompt)
            texts.append([f"how is the {name} procedure configured", f"Query: {other} {other} settings explained",
                          f"  HOW is the   {name.upper()} procedure configured ", "two words"][variant % 4])
        return texts


class CountingGenerator:
    """Counts the prompts a wrapped generator is asked for."""

    def __init__(self, generate):
        self.generate, self.fingerprint, self.prompts = generate, generate.fingerprint, 0

    def __call__(self, prompts):
        self.prompts += len(prompts)
        return self.generate(prompts)


@pytest.fixture(scope="module")
def tiny_llama_generator(tmp_path_factory):
    from harness.synthetic_queries import load_generator

    torch.set_num_threads(1)
    folder = save_tiny_llama(tmp_path_factory.mktemp("tiny-llama"))
    return load_generator(str(folder), "cpu", seed=0, max_new_tokens=6)


def digest(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*") if p.is_file()}


def test_bare_corpus_gets_queries_and_qrels_that_the_task_loader_reads(bare_tiny_corpus, tiny_llama_generator):
    settings = QuerySettings(per_doc=2, filter="none", min_words=1, max_words=64, batch_size=8)
    info = make_queries(bare_tiny_corpus, tiny_llama_generator, settings)
    task = load_task_folder(bare_tiny_corpus)
    assert sorted(task.qrels) == ["dev", "test", "train"] and info["splits"] == ["train", "dev", "test"]
    documents = {split: {d for docs in task.qrels[split].values() for d in docs} for split in task.qrels}
    assert {split: len(docs) for split, docs in documents.items()} == {"train": 10, "dev": 1, "test": 1}
    counts = info["counts"]
    assert sum(c["generated"] for c in counts.values()) == 24
    for split, c in counts.items():
        assert c["kept"] == len(task.qrels[split]) == c["generated"] - sum(c["dropped"].values())
    assert all(qid.startswith("syn-") and len(docs) == 1 for split in task.qrels.values() for qid, docs in split.items())
    assert synthetic_metadata(bare_tiny_corpus)["synthetic"]["generator"] == tiny_llama_generator.fingerprint
    assert "sample(temperature=0.7,top_p=0.95,seed=0)" in tiny_llama_generator.fingerprint


def test_a_rerun_generates_nothing_again_and_writes_the_same_files(bare_tiny_corpus, tiny_llama_generator):
    settings = QuerySettings(per_doc=2, filter="none", min_words=1, max_words=64, batch_size=5)
    first = CountingGenerator(tiny_llama_generator)
    make_queries(bare_tiny_corpus, first, settings)
    written = digest(bare_tiny_corpus)
    again = CountingGenerator(tiny_llama_generator)
    make_queries(bare_tiny_corpus, again, settings)
    assert (first.prompts, again.prompts) == (24, 0)
    assert digest(bare_tiny_corpus) == written


def test_an_interrupted_run_keeps_its_finished_batches(named_corpus):
    class Failing(StubGenerator):
        def __call__(self, prompts):
            if len(self.prompts) >= 8:
                raise RuntimeError("generator crashed")
            return super().__call__(prompts)

    settings = QuerySettings(per_doc=4, filter="none", batch_size=4, min_words=1)
    with pytest.raises(RuntimeError):
        make_queries(named_corpus, Failing(), settings)
    assert len((named_corpus / "synthetic_generations.jsonl").read_text().splitlines()) == 8
    resumed = StubGenerator()
    make_queries(named_corpus, resumed, settings)
    assert len(resumed.prompts) == 48 - 8


def test_an_interrupted_run_into_a_new_folder_resumes_there(tiny_task_dir, tmp_path):
    out = tmp_path / "synthetic-train"

    def first_words(prompts):
        if first_words.calls >= 1:
            raise RuntimeError("generator crashed")
        first_words.calls += 1
        return [" ".join(p.split()[:4]) for p in prompts]

    first_words.fingerprint, first_words.calls = "first-words", 0
    settings = QuerySettings(per_doc=1, filter="none", batch_size=4)
    with pytest.raises(RuntimeError):
        make_queries(tiny_task_dir, first_words, settings, out_dir=out)
    assert [p.name for p in out.iterdir()] == ["synthetic_generations.jsonl"]
    first_words.calls = -100  # works again
    make_queries(tiny_task_dir, first_words, settings, out_dir=out)
    assert (out / "synthetic_info.json").exists()
    (tmp_path / "someone-elses").mkdir()
    (tmp_path / "someone-elses" / "notes.txt").write_text("keep")
    with pytest.raises(HarnessError, match="was not written by make-queries"):
        make_queries(tiny_task_dir, first_words, settings, out_dir=tmp_path / "someone-elses")


def test_length_duplicate_and_round_trip_filters_are_counted(named_corpus, capsys):
    settings = QuerySettings(per_doc=4, filter="bm25", top_k=1, min_words=3, max_words=12, splits=("train", "test"))
    info = make_queries(named_corpus, StubGenerator(), settings)
    dropped = {"empty": 0, "too_short": 1, "too_long": 0, "duplicate": 1, "round_trip": 1}
    train_docs = 12 - 1  # test gets round(12 * 0.1 / 0.9) = 1 document
    assert info["counts"] == {
        "train": {"generated": 4 * train_docs, "kept": train_docs, "dropped": {k: v * train_docs for k, v in dropped.items()}},
        "test": {"generated": 4, "kept": 1, "dropped": dropped},
    }
    task = load_task_folder(named_corpus)
    assert all(task.queries[qid].startswith("how is the ") for qid in task.queries)
    assert all(f"d-{task.queries[qid].split()[3]}" in docs for qid, docs in task.qrels["train"].items())


def test_max_words_drops_long_queries(named_corpus):
    settings = QuerySettings(per_doc=1, filter="none", min_words=1, max_words=4, splits=("test",))
    with pytest.raises(HarnessError, match=r"no synthetic test query survived the filters \(too_long 12\)"):
        make_queries(named_corpus, StubGenerator(), settings)


def test_human_queries_stay_untouched_and_a_new_folder_trains_on_synthetic_ones(tiny_task_dir, tmp_path, capsys):
    before = digest(tiny_task_dir)
    with pytest.raises(HarnessError, match="already has queries.jsonl: pass --out-dir"):
        make_queries(tiny_task_dir, StubGenerator(), QuerySettings(filter="none"))
    out = tmp_path / "synthetic-train"

    def named(prompts):  # the tiny corpus has no NAMES: query with the first four words of the document
        return [" ".join(p.split()[:4]) for p in prompts]  # the prompt starts with the document text

    named.fingerprint = "first-words"
    info = make_queries(tiny_task_dir, named, QuerySettings(per_doc=1, filter="none"), out_dir=out)
    assert digest(tiny_task_dir) == before
    human, synthetic = load_task_folder(tiny_task_dir), load_task_folder(out)
    assert synthetic.qrels["test"] == human.qrels["test"] and synthetic.qrels["dev"] == human.qrels["dev"]
    assert all(qid.startswith("syn-") for qid in synthetic.qrels["train"]) and set(synthetic.corpus) == set(human.corpus)
    assert (info["splits"], info["human_splits"]) == (["train"], ["dev", "test"])


def test_cli_writes_the_folder_and_prints_one_summary_line(named_corpus, tmp_path, capsys, monkeypatch):
    import harness.synthetic_queries as synthetic_queries

    monkeypatch.setattr(synthetic_queries, "load_generator", lambda spec, device, seed, max_new_tokens: StubGenerator())
    assert main(["make-queries", "--task-dir", str(named_corpus), "--per-doc", "4", "--top-k", "1", "--device", "cpu"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out == [f"make-queries: generated 48, kept 12, dropped 36 (too_short 12, duplicate 12, round_trip 12) "
                   f"-> {named_corpus} (train 10, dev 1, test 1)"]
    assert json.loads((named_corpus / "synthetic_info.json").read_text())["synthetic"]["filter"]["method"] == "bm25"
