"""A bad task folder fails with one line naming the file and line; a good one loads exactly."""

from __future__ import annotations

import json

import pytest

from harness.errors import InputError
from harness.task import load_task_folder


def test_valid_folder_loads_corpus_queries_qrels_and_label_paths(tiny_task_dir):
    task = load_task_folder(tiny_task_dir)
    assert len(task.corpus) == 18
    assert {split: len(q) for split, q in task.qrels.items()} == {"train": 30, "dev": 12, "test": 12}
    assert task.corpus["network-scan-0"].labels == ("network", "scan", "network-scan-0")
    assert task.corpus["network-scan-0"].full_text.startswith("scan 0 network scan")
    assert set(task.split_queries("test")) == set(task.qrels["test"])


def _replace_line(path, number, text):
    lines = path.read_text(encoding="utf-8").splitlines()
    lines[number - 1] = text
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _error(folder) -> InputError:
    with pytest.raises(InputError) as caught:
        load_task_folder(folder)
    message = str(caught.value)
    assert "\n" not in message
    return caught.value


def test_malformed_json_names_file_and_line(tiny_task_dir):
    _replace_line(tiny_task_dir / "corpus.jsonl", 3, '{"_id": "x", "text": ')
    error = _error(tiny_task_dir)
    assert (error.path.endswith("corpus.jsonl"), error.line) == (True, 3)
    assert "malformed JSON" in str(error)


def test_missing_id_is_reported(tiny_task_dir):
    _replace_line(tiny_task_dir / "queries.jsonl", 2, json.dumps({"text": "no id"}))
    error = _error(tiny_task_dir)
    assert error.path.endswith("queries.jsonl") and error.line == 2 and "missing `_id`" in str(error)


def test_duplicate_document_id_is_reported(tiny_task_dir):
    first = (tiny_task_dir / "corpus.jsonl").read_text().splitlines()[0]
    _replace_line(tiny_task_dir / "corpus.jsonl", 5, first)
    error = _error(tiny_task_dir)
    assert error.line == 5 and "duplicate document id 'network-scan-0'" in str(error)


def test_duplicate_query_id_is_reported(tiny_task_dir):
    first = (tiny_task_dir / "queries.jsonl").read_text().splitlines()[0]
    _replace_line(tiny_task_dir / "queries.jsonl", 4, first)
    assert "duplicate query id" in str(_error(tiny_task_dir))


def test_qrels_pointing_at_a_missing_document(tiny_task_dir):
    _replace_line(tiny_task_dir / "qrels" / "test.tsv", 2, "q006\tno-such-doc\t1")
    error = _error(tiny_task_dir)
    assert error.path.endswith("test.tsv") and error.line == 2 and "unknown document id 'no-such-doc'" in str(error)


def test_qrels_pointing_at_a_missing_query(tiny_task_dir):
    _replace_line(tiny_task_dir / "qrels" / "dev.tsv", 3, "q999\tnetwork-scan-0\t1")
    assert "unknown query id 'q999'" in str(_error(tiny_task_dir))


def test_qrels_without_header(tiny_task_dir):
    _replace_line(tiny_task_dir / "qrels" / "test.tsv", 1, "q006\tnetwork-scan-2\t1")
    error = _error(tiny_task_dir)
    assert error.line == 1 and "header" in str(error)


def test_qrels_with_non_integer_score(tiny_task_dir):
    _replace_line(tiny_task_dir / "qrels" / "test.tsv", 2, "q006\tnetwork-scan-2\thigh")
    assert "score 'high' is not an integer" in str(_error(tiny_task_dir))


def test_empty_corpus(tiny_task_dir):
    (tiny_task_dir / "corpus.jsonl").write_text("", encoding="utf-8")
    assert "empty corpus" in str(_error(tiny_task_dir))


def test_empty_test_split(tiny_task_dir):
    (tiny_task_dir / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n", encoding="utf-8")
    assert "no relevant" in str(_error(tiny_task_dir))


def test_missing_test_split(tiny_task_dir):
    (tiny_task_dir / "qrels" / "test.tsv").unlink()
    assert "file not found" in str(_error(tiny_task_dir))


def test_non_utf8_bytes_name_the_line(tiny_task_dir):
    path = tiny_task_dir / "queries.jsonl"
    lines = path.read_bytes().splitlines(keepends=True)
    lines[6] = b'{"_id": "q006", "text": "caf\xe9"}\n'
    path.write_bytes(b"".join(lines))
    error = _error(tiny_task_dir)
    assert error.line == 7 and "not valid UTF-8" in str(error)


def test_label_path_of_inconsistent_depth_when_depth_is_fixed(tiny_task_dir):
    _replace_line(tiny_task_dir / "corpus.jsonl", 2, json.dumps({"_id": "network-scan-1", "text": "t", "labels": ["network"]}))
    with pytest.raises(InputError, match=r"corpus.jsonl:2: label path of 'network-scan-1' has depth 1, the task fixes 3"):
        load_task_folder(tiny_task_dir, label_depth=3)
    assert load_task_folder(tiny_task_dir).corpus["network-scan-1"].labels == ("network",)


def test_labels_are_optional(tiny_task_dir):
    path = tiny_task_dir / "corpus.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    path.write_text("".join(json.dumps({k: v for k, v in r.items() if k != "labels"}) + "\n" for r in rows))
    assert load_task_folder(tiny_task_dir).label_paths == {}


@pytest.mark.parametrize("score", ["4294967295", str(2**63), "1001", "-1001"])
def test_qrels_score_outside_the_documented_range(tiny_task_dir, score):
    _replace_line(tiny_task_dir / "qrels" / "test.tsv", 2, f"q006\tnetwork-scan-2\t{score}")
    error = _error(tiny_task_dir)
    assert error.path.endswith("test.tsv") and error.line == 2 and f"score {score} is outside -1000..1000" in str(error)


def test_qrels_score_at_the_bound_is_kept(tiny_task_dir):
    _replace_line(tiny_task_dir / "qrels" / "test.tsv", 2, "q006\tnetwork-scan-2\t1000")
    assert load_task_folder(tiny_task_dir).qrels["test"]["q006"] == {"network-scan-2": 1000}


def test_same_pair_judged_twice_names_both_lines(tiny_task_dir):
    _replace_line(tiny_task_dir / "qrels" / "test.tsv", 4, "q006\tnetwork-scan-2\t0")
    error = _error(tiny_task_dir)
    assert error.line == 4 and "query 'q006' judges document 'network-scan-2' twice, first at line 2" in str(error)


def test_evaluation_query_without_relevant_document_is_dropped_with_a_warning(tiny_task_dir):
    _replace_line(tiny_task_dir / "qrels" / "test.tsv", 2, "q006\tnetwork-scan-2\t0")
    with pytest.warns(UserWarning, match=r"test\.tsv: dropped 1 queries with no relevant \(score > 0\) document"):
        task = load_task_folder(tiny_task_dir)
    assert "q006" not in task.qrels["test"] and "q006" not in task.split_queries("test")
    assert len(task.qrels["test"]) == 11


def test_train_query_without_relevant_document_is_kept(tiny_task_dir):
    _replace_line(tiny_task_dir / "qrels" / "train.tsv", 2, "q000\tnetwork-scan-0\t0")
    assert load_task_folder(tiny_task_dir).qrels["train"]["q000"] == {"network-scan-0": 0}


def test_split_with_only_non_relevant_judgments(tiny_task_dir):
    path = tiny_task_dir / "qrels" / "test.tsv"
    path.write_text(path.read_text().replace("\t1\n", "\t0\n"), encoding="utf-8")
    assert "no relevant" in str(_error(tiny_task_dir))


@pytest.mark.parametrize(
    ("file", "number", "line", "problem"),
    [
        ("corpus.jsonl", 2, json.dumps({"_id": "network-scan 1", "text": "t"}), "document id 'network-scan 1' contains whitespace"),
        ("queries.jsonl", 3, json.dumps({"_id": "q\t002", "text": "t"}), r"query id 'q\t002' contains whitespace"),
        ("queries.jsonl", 3, json.dumps({"_id": "q\n002", "text": "t"}), r"query id 'q\n002' contains whitespace"),
        ("queries.jsonl", 3, json.dumps({"_id": "q\u00a0002", "text": "t"}), r"query id 'q\xa0002' contains whitespace"),
        ("qrels/test.tsv", 2, "q 006\tnetwork-scan-2\t1", "query id 'q 006' contains whitespace"),
        ("qrels/test.tsv", 2, "q006\tnetwork scan-2\t1", "document id 'network scan-2' contains whitespace"),
        ("qrels/test.tsv", 2, "q006\t\t1", "empty document id"),
        ("qrels/test.tsv", 2, "\tnetwork-scan-2\t1", "empty query id"),
    ],
)
def test_ids_that_a_run_file_cannot_hold(tiny_task_dir, file, number, line, problem):
    _replace_line(tiny_task_dir / file, number, line)
    error = _error(tiny_task_dir)
    assert (error.path.endswith(file), error.line, error.problem) == (True, number, problem)


@pytest.mark.parametrize(
    ("file", "record", "key"),
    [
        ("corpus.jsonl", {"_id": "network-scan-1", "title": "scan \ud800", "text": "t"}, "title"),
        ("corpus.jsonl", {"_id": "network-scan-1", "text": "t \udfff"}, "text"),
        ("corpus.jsonl", {"_id": "network-scan-1", "text": "t", "labels": ["network", "\ud800"]}, "labels"),
        ("corpus.jsonl", {"_id": "network-scan-\ud800", "text": "t"}, "_id"),
        ("queries.jsonl", {"_id": "q001", "text": "caf\ud800"}, "text"),
        ("queries.jsonl", {"_id": "q\ud800", "text": "t"}, "_id"),
    ],
)
def test_lone_surrogate_escapes_are_refused(tiny_task_dir, file, record, key):
    _replace_line(tiny_task_dir / file, 2, json.dumps(record))  # json.dumps writes the surrogate as a `\ud800` escape
    error = _error(tiny_task_dir)
    assert (error.path.endswith(file), error.line) == (True, 2)
    assert f"`{key}` is not encodable as UTF-8 (lone surrogate" in error.problem
