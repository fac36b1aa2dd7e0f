"""`harness run` refuses bad options with one line before anything is fitted or written, and keys the
results of a user's folder by its content, inside --out."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import tiny_corpus, write_beir
from harness.catalog import folder_revision
from harness.cli import main


def _run(*args) -> int:
    return main(["run", "--no-progress", *args])


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("harness: error: "), err
    return err[0]


def _results(out: Path) -> list[str]:
    return sorted(p.relative_to(out).as_posix() for p in out.rglob("*.json"))


REFUSED = {
    "negative seed": (["--seeds=-1"], "seeds must be >= 0, got -1"),
    "no seed": (["--seeds", ","], "--seeds names no seed"),
    "misspelt profile": (["--task", "cyber", "--profile", "smal"],
                         "task 'cyber': unknown profile 'smal'; did you mean 'small'? (known: full, small)"),
    "profile of a folder": (["--profile", "small"], "a --task-dir folder always runs whole; its only profile is 'full'"),
    "missing model folder": (["--methods", "bm25,frozen", "--model", "/nonexistent/model"],
                             "--model: model path /nonexistent/model does not exist"),
    "unknown model alias": (["--methods", "bm25,frozen", "--model", "minilmm"],
                            "--model: unknown model alias 'minilmm'; did you mean 'minilm'?"),
    "missing model in a baseline": (["--methods", "bm25,broken"], "--methods broken: model path /nonexistent/model does not exist"),
    "missing generator": (["--generator", "/nonexistent/llm"], "--generator: causal LM '/nonexistent/llm' is neither"),
    "nli model alone": (["--nli-model", "/nonexistent/nli"], "--nli-model scores generated answers, so it needs --generator"),
    "missing baselines dir": (["--baselines-dir", "/nonexistent/baselines"], "--baselines-dir /nonexistent/baselines is not a folder"),
    "unknown device": (["--device", "gpu0"], "--device 'gpu0' is not a device"),
    "bad task name": (["--task-name", "../up"], "task name '../up' must start with a letter or digit"),
    "task name of a built-in": (["--task", "cyber", "--task-name", "mine"], "--task-name names a --task-dir folder"),
    "no method": (["--methods", ","], "--methods names no method"),
}


@pytest.mark.parametrize("case", REFUSED, ids=list(REFUSED))
def test_a_refused_option_is_one_line_exit_2_and_writes_nothing(case, tmp_path, tiny_task_dir, capsys):
    args, message = REFUSED[case]
    baselines = tmp_path / "baselines"
    baselines.mkdir()
    (baselines / "broken.toml").write_text('method = "frozen"\nmodel = "/nonexistent/model"\n')
    where = [] if "--task" in args else ["--task-dir", str(tiny_task_dir)]
    if "--baselines-dir" not in args:
        where += ["--baselines-dir", str(baselines)]
    out = tmp_path / "results"
    assert _run(*where, "--methods", "bm25", *args, "--out", str(out)) == 2
    assert message in _one_error_line(capsys)
    assert not out.exists()


def test_an_out_that_is_a_file_is_refused(tmp_path, tiny_task_dir, capsys):
    out = tmp_path / "results.txt"
    out.write_text("mine")
    assert _run("--task-dir", str(tiny_task_dir), "--methods", "bm25", "--out", str(out)) == 2
    assert f"--out {out} cannot be a results folder: {out} is a file" in _one_error_line(capsys)
    assert out.read_text() == "mine"
    assert _run("--task-dir", str(tiny_task_dir), "--methods", "bm25", "--out", str(out / "below")) == 2
    assert f"{out} is a file" in _one_error_line(capsys)


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write a read-only folder")
def test_a_read_only_out_is_refused(tmp_path, tiny_task_dir, capsys):
    out = tmp_path / "results"
    out.mkdir(mode=0o555)
    assert _run("--task-dir", str(tiny_task_dir), "--methods", "bm25", "--out", str(out)) == 2
    assert f"--out {out} is not writable" in _one_error_line(capsys)
    assert list(out.iterdir()) == []


def test_a_plugin_given_as_a_path_is_refused(tmp_path, tiny_task_dir, capsys):
    out = tmp_path / "results"
    assert main(["--plugin", "../x", "run", "--task-dir", str(tiny_task_dir), "--methods", "bm25", "--out", str(out)]) == 2
    assert "--plugin '../x' is not a module name" in _one_error_line(capsys)
    assert not out.exists()


def test_a_plugin_that_fails_to_import_is_named(tmp_path, tiny_task_dir, monkeypatch, capsys):
    (tmp_path / "failing_plugin.py").write_text("raise RuntimeError('no licence file')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    out = tmp_path / "results"
    args = ["run", "--task-dir", str(tiny_task_dir), "--methods", "bm25", "--out", str(out)]
    assert main(["--plugin", "failing_plugin", *args]) == 2
    assert _one_error_line(capsys) == "harness: error: plugin module 'failing_plugin' failed to import: RuntimeError: no licence file"
    assert main(["--plugin", "absent_plugin", *args]) == 2
    assert "cannot import plugin module 'absent_plugin'" in _one_error_line(capsys)
    assert not out.exists()


def test_a_plugin_in_the_working_directory_imports_without_python_m(tmp_path, monkeypatch, capsys):
    """The `harness` console script has no working directory on sys.path; `--plugin` adds it, at the end."""
    import sys

    (tmp_path / "cwd_plugin_for_test.py").write_text("LOADED = True\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    monkeypatch.delitem(sys.modules, "cwd_plugin_for_test", raising=False)
    assert main(["--plugin", "cwd_plugin_for_test", "methods"]) == 0
    assert sys.modules["cwd_plugin_for_test"].LOADED and sys.path[-1] == str(tmp_path)
    capsys.readouterr()


def test_an_edited_task_folder_is_run_again_not_skipped(tmp_path, tiny_task_dir, capsys):
    out = tmp_path / "results"
    assert _run("--task-dir", str(tiny_task_dir), "--methods", "bm25", "--out", str(out)) == 0
    before = folder_revision(tiny_task_dir)
    assert _results(out) == [f"tiny/bm25/lexical__{_bm25_hash(out)}__full-{before[:8]}__seed0.json"]
    qrels = tiny_task_dir / "qrels" / "test.tsv"
    qrels.write_text("".join(qrels.read_text().splitlines(keepends=True)[:-1]))  # one test query fewer
    capsys.readouterr()
    assert _run("--task-dir", str(tiny_task_dir), "--methods", "bm25", "--out", str(out)) == 0
    after = folder_revision(tiny_task_dir)
    assert "skip" not in capsys.readouterr().err and after != before
    results = {json.loads((out / f).read_text())["dataset_revision"]: json.loads((out / f).read_text()) for f in _results(out)}
    assert set(results) == {before[:12], after[:12]}
    assert results[before[:12]]["run_info"]["n_queries"] == 12 and results[after[:12]]["run_info"]["n_queries"] == 11


def _bm25_hash(out: Path) -> str:
    return next(out.rglob("*.json")).name.split("__")[1]


def test_two_folders_of_the_same_name_do_not_collide(tmp_path):
    corpus, queries, qrels = tiny_corpus()
    first = write_beir(tmp_path / "a" / "tiny", corpus, queries, qrels)
    second = write_beir(tmp_path / "b" / "tiny", corpus, queries, {**qrels, "test": dict(list(qrels["test"].items())[:6])})
    out = tmp_path / "results"
    assert _run("--task-dir", str(first), "--methods", "bm25", "--out", str(out)) == 0
    assert _run("--task-dir", str(second), "--methods", "bm25", "--out", str(out)) == 0
    names = _results(out)
    assert len(names) == 2 and all(n.startswith("tiny/bm25/lexical__") for n in names)
    assert {n.split("__")[2] for n in names} == {f"full-{folder_revision(f)[:8]}" for f in (first, second)}


def test_a_task_dir_is_named_after_the_folder_it_resolves_to(tmp_path, tiny_task_dir, monkeypatch):
    out = tmp_path / "results"
    assert _run("--task-dir", str(tiny_task_dir / "qrels" / ".."), "--methods", "bm25", "--out", str(out)) == 0
    assert [n.split("/")[0] for n in _results(out)] == ["tiny"]
    monkeypatch.chdir(tiny_task_dir)
    assert _run("--task-dir", ".", "--methods", "bm25", "--out", str(out), "--overwrite") == 0
    assert [n.split("/")[0] for n in _results(out)] == ["tiny"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results", "tiny"]  # nothing written beside --out


def test_a_folder_name_outside_the_task_name_characters_is_sanitised(tmp_path):
    folder = write_beir(tmp_path / "my data (v2)", *tiny_corpus())
    out = tmp_path / "results"
    assert _run("--task-dir", str(folder), "--methods", "bm25", "--out", str(out)) == 0
    assert [n.split("/")[0] for n in _results(out)] == ["my-data-v2-"]


def test_task_name_names_the_results_folder(tmp_path, tiny_task_dir):
    out = tmp_path / "results"
    assert _run("--task-dir", str(tiny_task_dir), "--task-name", "cyber.v2_mine", "--methods", "bm25", "--out", str(out)) == 0
    [name] = _results(out)
    assert name.startswith("cyber.v2_mine/bm25/") and json.loads((out / name).read_text())["task_name"] == "cyber.v2_mine"


@pytest.mark.parametrize("name", ["a/b", "..", "a..b", ".hidden", "-dash", "", "sp ace", "/abs"])
def test_task_names_that_are_no_plain_folder_name_are_refused(name, tmp_path, tiny_task_dir, capsys):
    out = tmp_path / "results"
    assert _run("--task-dir", str(tiny_task_dir), f"--task-name={name}", "--methods", "bm25", "--out", str(out)) == 2
    assert f"task name {name!r} must start with a letter or digit" in _one_error_line(capsys)
    assert not out.exists()


def test_causal_lm_and_nli_loaders_refuse_pickle_checkpoints(tmp_path):
    import torch
    from llm_fixtures import save_tiny_llama
    from safetensors.torch import load_file
    from transformers import BertConfig, BertForSequenceClassification

    from harness.errors import HarnessError
    from harness.llm import load_causal_lm
    from harness.rag_generation import cross_encoder_nli

    llama = save_tiny_llama(tmp_path / "llama")
    load_causal_lm(str(llama))  # the safetensors folder loads
    torch.save(load_file(llama / "model.safetensors"), llama / "pytorch_model.bin")
    (llama / "model.safetensors").unlink()
    with pytest.raises(HarnessError, match="no \\*.safetensors weights; .bin checkpoints are refused"):
        load_causal_lm(str(llama))
    nli = tmp_path / "nli"
    config = BertConfig(vocab_size=32, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                        num_labels=3, id2label={0: "contradiction", 1: "entailment", 2: "neutral"})
    BertForSequenceClassification(config).save_pretrained(nli)
    torch.save(load_file(nli / "model.safetensors"), nli / "pytorch_model.bin")
    (nli / "model.safetensors").unlink()
    with pytest.raises(OSError, match="model.safetensors"):
        cross_encoder_nli(nli)


def test_python_m_harness_prefers_installed_packages_to_files_in_the_working_directory(tmp_path, tiny_task_dir):
    cwd = tmp_path / "work"
    cwd.mkdir()
    (cwd / "bm25s.py").write_text("raise ImportError('the bm25s.py of the working directory was imported')\n")
    (cwd / "cwd_plugin.py").write_text(  # a plugin lying in the working directory still loads
        "from harness.methods import register_method\nfrom harness.methods.bm25 import BM25\n"
        "@register_method('bm25-here')\nclass Here(BM25):\n    name = 'bm25-here'\n"
    )
    done = subprocess.run([sys.executable, "-m", "harness", "--plugin", "cwd_plugin", "run", "--no-progress", "--task-dir",
                           str(tiny_task_dir), "--methods", "bm25-here", "--out", "results"],
                          cwd=cwd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert [n.split("/")[:2] for n in _results(cwd / "results")] == [["tiny", "bm25-here"]]
