"""Caches that cannot lie: a corrupt embedding entry or a changed built task file is recomputed, never trusted."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from harness.builders.common import file_checksums
from harness.catalog import build_mismatch, ensure_built, load_task
from harness.cli import main
from harness.encoders import CachingEncoder, write_cache_entry
from harness.registry import Registry
from harness.taskcard import TaskCard

TEXTS = ["port scan", "packet capture", "payload dropper", "email lure", "password spray"]


class CountingEncoder:
    """Deterministic unit vectors from the texts, counting how often it is really asked to encode."""

    def __init__(self):
        self.calls = 0

    def encode(self, texts, kind):
        self.calls += 1
        rows = [[len(t), t.count("a") + 1.0, t.count("p") + 1.0, kind == "query"] for t in texts]
        vectors = np.array(rows, dtype=np.float32)
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def _cached(cache_dir: Path) -> tuple[CachingEncoder, CountingEncoder]:
    inner = CountingEncoder()
    return CachingEncoder(inner, "fingerprint", cache_dir), inner


def _entry(cache_dir: Path) -> Path:
    (path,) = cache_dir.glob("*.npy")
    return path


def _zero_rows(path: Path) -> None:
    vectors = np.load(path)
    vectors[:3] = 0.0
    np.save(path, vectors)


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-20])


def _drop_a_row(path: Path) -> None:
    np.save(path, np.load(path)[:-1])


def test_a_valid_cache_entry_is_a_hit_and_is_not_recomputed(tmp_path):
    first, _ = _cached(tmp_path)
    expected = first.encode(TEXTS, "document")
    second, inner = _cached(tmp_path)
    np.testing.assert_array_equal(second.encode(TEXTS, "document"), expected)
    assert inner.calls == 0
    assert (first.cache_use(), second.cache_use()) == ({"hits": 0, "misses": 1, "corrupt": 0},
                                                        {"hits": 1, "misses": 0, "corrupt": 0})


@pytest.mark.parametrize("corrupt", [_zero_rows, _truncate, _drop_a_row])
def test_a_corrupt_cache_entry_is_recomputed_said_so_and_overwritten(tmp_path, capsys, corrupt):
    uncached = CountingEncoder().encode(TEXTS, "document")
    _cached(tmp_path)[0].encode(TEXTS, "document")
    corrupt(_entry(tmp_path))
    encoder, inner = _cached(tmp_path)
    np.testing.assert_array_equal(encoder.encode(TEXTS, "document"), uncached)
    assert inner.calls == 1 and encoder.cache_use() == {"hits": 0, "misses": 0, "corrupt": 1}
    err = capsys.readouterr().err
    assert f"[harness] embedding cache entry {_entry(tmp_path)} is corrupt (" in err
    assert err.rstrip().endswith("; recomputing")
    again, _ = _cached(tmp_path)
    np.testing.assert_array_equal(again.encode(TEXTS, "document"), uncached)
    assert again.cache_use() == {"hits": 1, "misses": 0, "corrupt": 0}  # the entry was rewritten whole


def test_an_entry_with_matching_checksum_but_a_row_count_other_than_the_texts_is_recomputed(tmp_path, capsys):
    encoder, inner = _cached(tmp_path)
    write_cache_entry(encoder._path(TEXTS, "query"), np.ones((2, 4), dtype=np.float32))
    assert encoder.encode(TEXTS, "query").shape == (5, 4) and inner.calls == 1
    assert encoder.cache_use()["corrupt"] == 1 and "is corrupt (shape (2, 4) for 5 texts)" in capsys.readouterr().err


def test_an_entry_written_before_checksums_existed_counts_as_a_miss_and_gains_one(tmp_path, capsys):
    encoder, _ = _cached(tmp_path)
    np.save(encoder._path(TEXTS, "query"), np.zeros((5, 4), dtype=np.float32))  # an old entry: .npy, no sidecar
    vectors = encoder.encode(TEXTS, "query")
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0) and encoder.cache_use()["misses"] == 1
    assert capsys.readouterr().err == ""
    assert json.loads((tmp_path / f"{_entry(tmp_path).name}.checksum").read_text())["shape"] == [5, 4]


def _baselines(folder: Path, tiny_bert_dir: Path) -> Path:
    folder.mkdir()
    (folder / "frozen.toml").write_text(f'method = "frozen"\nmodel = "{tiny_bert_dir}"\nprecision = "fp32"\n')
    (folder / "bm25.toml").write_text('method = "bm25"\n')
    return folder


def _run(tiny_task_dir: Path, baselines: Path, out: Path, methods: str) -> dict:
    command = ["run", "--no-progress", "--overwrite", "--task-dir", str(tiny_task_dir), "--methods", methods,
               "--baselines-dir", str(baselines), "--out", str(out)]
    assert main(command) == 0
    return {p.parent.name: json.loads(p.read_text()) for p in out.rglob("*seed0.json")}


def test_a_result_records_whether_its_embeddings_came_from_the_cache(tmp_path, tiny_task_dir, tiny_bert_dir, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("HARNESS_EMBEDDING_CACHE", str(cache))
    baselines, out = _baselines(tmp_path / "baselines", tiny_bert_dir), tmp_path / "results"
    fresh = _run(tiny_task_dir, baselines, out, "frozen,bm25")
    assert fresh["frozen"]["run_info"]["embedding_cache"] == {"hits": 0, "misses": 2, "corrupt": 0}
    assert fresh["bm25"]["run_info"]["embedding_cache"] is None
    documents = max(cache.glob("*.npy"), key=lambda p: np.load(p).shape[0])  # 18 documents, 12 test queries
    _zero_rows(documents)
    rerun = _run(tiny_task_dir, baselines, out, "frozen")["frozen"]
    assert rerun["run_info"]["embedding_cache"] == {"hits": 1, "misses": 0, "corrupt": 1}
    assert rerun["scores"] == fresh["frozen"]["scores"]


BUILDS: list[Path] = []  # folders the builder below was asked to fill


def build_tiny_task(out: Path, seed: int, n_dev: int, n_test: int) -> None:
    """A task card's builder: one document, one query."""
    BUILDS.append(out)
    (out / "qrels").mkdir()
    (out / "corpus.jsonl").write_text('{"_id": "d1", "title": "scan", "text": "port scan of a host"}\n', encoding="utf-8")
    (out / "queries.jsonl").write_text('{"_id": "q1", "text": "port scan"}\n', encoding="utf-8")
    (out / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\n", encoding="utf-8")



@pytest.fixture
def tiny_card(tmp_path, monkeypatch) -> TaskCard:
    card = TaskCard(name="tiny-built", domain="test", description="A one-document task.",
                    builder=f"{__name__}:build_tiny_task", path=tmp_path / "tiny-built.toml")
    monkeypatch.setenv("HARNESS_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setattr("harness.catalog.TASKS", Registry("task", "harness.tasks", {card.name: card}))
    return card


def _change(folder: Path) -> None:
    (folder / "corpus.jsonl").write_text('{"_id": "d1", "title": "scan", "text": "tampered"}\n', encoding="utf-8")


def _delete(folder: Path) -> None:
    (folder / "qrels" / "test.tsv").unlink()


def _add(folder: Path) -> None:
    (folder / "notes.txt").write_text("mine\n", encoding="utf-8")


@pytest.mark.parametrize("tamper, problem", [(_change, "corpus.jsonl changed"), (_delete, "qrels/test.tsv missing"),
                                             (_add, "notes.txt unexpected")])
def test_a_built_task_folder_whose_files_differ_from_build_info_is_rebuilt_on_load(tiny_card, capsys, tamper, problem):
    folder = ensure_built(tiny_card)
    original = file_checksums(folder)
    tamper(folder)
    assert build_mismatch(folder) == problem
    builds = len(BUILDS)
    task = load_task("tiny-built")
    assert len(BUILDS) == builds + 1 and file_checksums(folder) == original
    assert task.metadata["build"]["checksums"] == original and task.corpus["d1"].text == "port scan of a host"
    assert (f"[harness] built task folder {folder} does not match its build_info.json ({problem}); rebuilding"
            in capsys.readouterr().err)


def test_an_intact_built_task_folder_is_verified_and_not_rebuilt(tiny_card, capsys):
    folder = ensure_built(tiny_card)
    builds = len(BUILDS)
    assert ensure_built(tiny_card) == folder and len(BUILDS) == builds
    assert build_mismatch(folder) is None and "rebuilding" not in capsys.readouterr().err
