"""The path a user walks (issue #16): a folder with only corpus.jsonl -> make-queries -> run bm25, frozen and
contrastive -> export-model -> the exported model, loaded in a fresh process without the harness, embeds like the run."""

from __future__ import annotations

import json

import numpy as np
import torch

from conftest import tiny_corpus
from harness.cli import main
from harness.synthetic_queries import QuerySettings, make_queries
from harness.task import load_task_folder
from test_export_model import TINY_TRAINING, embeddings_without_harness, harness_embeddings, local_paths_in


def first_words(prompts: list[str]) -> list[str]:
    """A deterministic stand-in for the LM: the prompt starts with the document, so its first words find it."""
    return [" ".join(prompt.split()[:5]) for prompt in prompts]


first_words.fingerprint = "first-five-words"


def test_a_bare_corpus_becomes_a_leaderboard_and_a_model_that_runs_without_the_harness(tmp_path, tiny_bert_dir, monkeypatch):
    torch.set_num_threads(1)
    monkeypatch.setenv("HARNESS_RUNS_DIR", str(tmp_path / "runs"))
    corpus = tmp_path / "my_corpus"
    corpus.mkdir()
    (corpus / "corpus.jsonl").write_text("".join(json.dumps(r) + "\n" for r in tiny_corpus()[0]))

    info = make_queries(corpus, first_words, QuerySettings(per_doc=2, filter="bm25", top_k=3, min_words=2))
    assert info["splits"] == ["train", "dev", "test"] and sum(c["kept"] for c in info["counts"].values()) > 0
    task = load_task_folder(corpus)
    assert task.qrels["test"] and task.qrels["train"]

    baselines = tmp_path / "baselines"
    baselines.mkdir()
    (baselines / "frozen.toml").write_text(f'method = "frozen"\nmodel = "{tiny_bert_dir}"\nprecision = "fp32"\n')
    (baselines / "contrastive.toml").write_text(f'method = "contrastive"\nmodel = "{tiny_bert_dir}"\n{TINY_TRAINING}')
    (baselines / "bm25.toml").write_text('method = "bm25"\n')
    out = tmp_path / "results"
    assert main(["run", "--no-progress", "--baselines-dir", str(baselines), "--task-dir", str(corpus),
                 "--methods", "bm25,frozen,contrastive", "--out", str(out)]) == 0
    board = (out / "leaderboard.md").read_text()
    assert "my_corpus" in board and "[synthetic test queries]" in board  # nobody mistakes it for a human test split
    (result,) = (out / "my_corpus" / "contrastive").glob("*.json")
    assert json.loads(result.read_text())["meta_info"]["task"]["synthetic"]["splits"] == ["train", "dev", "test"]

    dest = tmp_path / "my_model"
    assert main(["export-model", str(result), str(dest)]) == 0
    texts = list(task.split_queries("test").values())
    np.testing.assert_allclose(embeddings_without_harness(dest, texts, tmp_path), harness_embeddings(result, texts), atol=1e-5)
    assert local_paths_in(dest, [tmp_path, tiny_bert_dir]) == []
