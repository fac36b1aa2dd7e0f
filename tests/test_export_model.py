"""export-model: a finished run's model, written as a sentence-transformers folder that loads without the harness."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import tiny_corpus, write_beir
from harness.cli import main
from harness.task import load_task_folder

TINY_TRAINING = 'precision = "fp32"\nmax_steps = 2\nbatch_size = 12\neval_steps = 0\nmax_seq_length = 48\nencode_batch_size = 16\n'

# Runs in a fresh interpreter, isolated (-I: no PYTHONPATH, no cwd, no user site) from a folder outside the repo,
# with the editable install's import hooks removed, so `import harness` fails as on a machine without it.
LOAD_WITHOUT_HARNESS = """
import json, sys
sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in getattr(f, "__module__", "")]
sys.path[:] = [p for p in sys.path if "editable" not in p]
try:
    import harness
    sys.exit("harness is importable")
except ImportError:
    pass
from sentence_transformers import SentenceTransformer
texts = json.load(open(sys.argv[2]))
vectors = SentenceTransformer(sys.argv[1], device="cpu", local_files_only=True).encode(texts, batch_size=16)
json.dump(vectors.tolist(), open(sys.argv[3], "w"))
"""


@pytest.fixture(scope="module")
def tiny_task_dir(tmp_path_factory) -> Path:
    return write_beir(tmp_path_factory.mktemp("task") / "tiny", *tiny_corpus())


@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory, tiny_task_dir, tiny_bert_dir) -> dict[str, Path]:
    """Result JSONs of bm25, frozen, contrastive and lora on the tiny task (2 steps each), run once per module."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("runs")
    baselines = root / "baselines"
    baselines.mkdir()
    (baselines / "frozen.toml").write_text(f'method = "frozen"\nmodel = "{tiny_bert_dir}"\nprecision = "fp32"\nbatch_size = 8\n')
    for method in ("contrastive", "lora"):
        (baselines / f"{method}.toml").write_text(f'method = "{method}"\nmodel = "{tiny_bert_dir}"\n{TINY_TRAINING}')
    (baselines / "bm25.toml").write_text('method = "bm25"\n')
    out = root / "results"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HARNESS_RUNS_DIR", str(root / "runs"))
        assert main(["run", "--no-progress", "--baselines-dir", str(baselines), "--task-dir", str(tiny_task_dir),
                     "--methods", "bm25,frozen,contrastive,lora", "--out", str(out)]) == 0
    return {path.parent.name: path for path in out.rglob("*.json") if path.parent.name != out.name}


def harness_embeddings(result_path: Path, texts: list[str]) -> np.ndarray:
    """The texts through the run's own saved model, as the harness's fitted encoder encodes them."""
    from harness.encoders import EncodeSettings, SentenceTransformerEncoder, load_sentence_transformer
    from harness.models import resolve_model_path

    result = json.loads(result_path.read_text())
    config = result["run_info"]["config"]
    folder = Path(result["train_info"].get("model_path") or resolve_model_path(config["model"]))
    model = load_sentence_transformer(folder, "cpu", config.get("max_seq_length"))
    settings = EncodeSettings(batch_size=16, max_seq_length=config["max_seq_length"], precision="fp32", show_progress=False)
    return SentenceTransformerEncoder(model, settings, "cpu").encode(texts, "query")


def embeddings_without_harness(folder: Path, texts: list[str], tmp_path: Path) -> np.ndarray:
    (tmp_path / "texts.json").write_text(json.dumps(texts))
    cwd = tmp_path / "elsewhere"
    cwd.mkdir(exist_ok=True)
    done = subprocess.run([sys.executable, "-I", "-c", LOAD_WITHOUT_HARNESS, str(folder), str(tmp_path / "texts.json"),
                           str(tmp_path / "vectors.json")], cwd=cwd, capture_output=True, text=True, timeout=300,
                          env={"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr[-2000:]
    return np.asarray(json.loads((tmp_path / "vectors.json").read_text()), dtype=np.float32)


def local_paths_in(folder: Path, paths: list[Path]) -> list[str]:
    needles = [str(p) for p in paths] + ["site-packages"]
    return [f"{file.name}: {needle}" for file in folder.rglob("*") if file.is_file()
            for needle in needles if needle.encode() in file.read_bytes()]


@pytest.mark.parametrize("baseline", ["contrastive", "lora", "frozen"])
def test_exported_model_reproduces_the_run_embeddings_without_the_harness(baseline, tiny_runs, tiny_task_dir, tiny_bert_dir, tmp_path):
    dest = tmp_path / "export" / baseline
    assert main(["export-model", str(tiny_runs[baseline]), str(dest)]) == 0
    task = load_task_folder(tiny_task_dir)
    texts = list(task.split_queries("test").values())
    expected = harness_embeddings(tiny_runs[baseline], texts)
    np.testing.assert_allclose(embeddings_without_harness(dest, texts, tmp_path), expected, atol=1e-5)
    assert local_paths_in(dest, [tmp_path, tiny_bert_dir, tiny_task_dir, tiny_runs[baseline].parents[3]]) == []
    assert not (dest / "adapter_config.json").exists()  # lora: merged into the weights
    card = (dest / "README.md").read_text()
    result = json.loads(tiny_runs[baseline].read_text())
    assert f"method `{result['run_info']['method']}`" in card and "task `tiny`" in card
    assert f"| ndcg_at_10 (main) | {result['scores']['test'][0]['ndcg_at_10']:.4f} |" in card


def test_bm25_has_no_model_to_export(tiny_runs, tmp_path, capsys):
    assert main(["export-model", str(tiny_runs["bm25"]), str(tmp_path / "dest")]) == 2
    assert capsys.readouterr().err.strip() == "harness: error: bm25 has no model to export"
    assert not (tmp_path / "dest").exists()


def test_export_refuses_a_folder_that_is_not_empty(tiny_runs, tmp_path, capsys):
    (tmp_path / "dest").mkdir()
    (tmp_path / "dest" / "keep.txt").write_text("mine")
    assert main(["export-model", str(tiny_runs["contrastive"]), str(tmp_path / "dest")]) == 2
    assert "is not empty" in capsys.readouterr().err
    assert [p.name for p in (tmp_path / "dest").iterdir()] == ["keep.txt"]


def test_llm_cl_exports_its_merged_decoder_with_mean_pooling(tmp_path, tiny_task_dir, monkeypatch):
    from peft import PeftModel
    from sentence_transformers import SentenceTransformer

    from harness.llm import TextFormat, load_causal_lm, pooled_states
    from llm_fixtures import save_tiny_llama

    torch.set_num_threads(1)
    monkeypatch.setenv("HARNESS_RUNS_DIR", str(tmp_path / "runs"))
    llama = save_tiny_llama(tmp_path / "llama")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "llm-cl.toml").write_text(f'method = "llm-cl"\nmodel = "{llama}"\nprecision = "fp32"\n')
    assert main(["run", "--no-progress", "--baselines-dir", str(tmp_path / "b"), "--task-dir", str(tiny_task_dir),
                 "--methods", "llm-cl", "--out", str(tmp_path / "r")]) == 0
    result_path = next((tmp_path / "r" / "tiny" / "llm-cl").glob("*.json"))
    assert main(["export-model", str(result_path), str(tmp_path / "export")]) == 0
    result = json.loads(result_path.read_text())
    texts = list(load_task_folder(tiny_task_dir).split_queries("test").values())
    model, tokenizer = load_causal_lm(str(llama))
    merged = PeftModel.from_pretrained(model, result["train_info"]["adapter"]).merge_and_unload().eval()
    rows = TextFormat(result["run_info"]["config"]["max_query_length"], 256).rows(tokenizer, texts, "query")
    with torch.no_grad():
        expected = pooled_states(merged, rows, "mean", tokenizer.pad_token_id, "cpu").numpy()
    exported = SentenceTransformer(str(tmp_path / "export"), device="cpu", local_files_only=True).encode(texts)
    np.testing.assert_allclose(exported, expected, atol=1e-5)
    assert local_paths_in(tmp_path / "export", [tmp_path]) == []
