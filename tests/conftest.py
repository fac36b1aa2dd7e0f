"""Shared fixtures: a tiny random BERT saved as a sentence-transformers folder and a tiny BEIR task.

Everything is built in the test session, so the suite needs no hub and no packaged model
(the few `integration` tests use the real packaged MiniLM).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

for _variable in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
    os.environ.setdefault(_variable, "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

TOPICS = {
    "network": {"scan": ["port", "probe", "sweep", "host"], "sniff": ["packet", "capture", "traffic", "wire"]},
    "malware": {"loader": ["payload", "dropper", "stage", "inject"], "worm": ["spread", "propagate", "copy", "replicate"]},
    "access": {"phish": ["email", "lure", "link", "attachment"], "brute": ["password", "guess", "spray", "login"]},
}
FILLER = ["the", "a", "adversary", "may", "use", "to", "and", "of", "system", "data"]


def tiny_corpus() -> tuple[list[dict], dict[str, str], dict[str, dict[str, dict[str, int]]]]:
    """18 documents under 3 topics x 2 subtopics, 54 queries split 30/12/12 (train/dev/test)."""
    corpus, queries, qrels = [], {}, {"train": {}, "dev": {}, "test": {}}
    n_query = 0
    for topic, subtopics in TOPICS.items():
        for sub, words in subtopics.items():
            for i in range(3):
                doc_id = f"{topic}-{sub}-{i}"
                text = " ".join(words[j % 4] if j % 3 == 0 else FILLER[(i + j) % len(FILLER)] for j in range(12 + i))
                corpus.append({"_id": doc_id, "title": f"{sub} {i}", "text": f"{topic} {sub} {text}", "labels": [topic, sub, doc_id]})
                for j in range(3):
                    qid = f"q{n_query:03d}"
                    queries[qid] = f"{words[(i + j) % 4]} {words[(i + j + 1) % 4]} {sub} {j}"
                    split = ("train", "train", "train", "train", "train", "dev", "test", "dev", "test")[n_query % 9]
                    qrels[split][qid] = {doc_id: 1}
                    n_query += 1
    return corpus, queries, qrels


def write_beir(folder: Path, corpus, queries, qrels) -> Path:
    (folder / "qrels").mkdir(parents=True, exist_ok=True)
    (folder / "corpus.jsonl").write_text("".join(json.dumps(r) + "\n" for r in corpus), encoding="utf-8")
    (folder / "queries.jsonl").write_text("".join(json.dumps({"_id": q, "text": t}) + "\n" for q, t in queries.items()), encoding="utf-8")
    for split, pairs in qrels.items():
        rows = ["query-id\tcorpus-id\tscore"] + [f"{q}\t{d}\t{s}" for q, docs in pairs.items() for d, s in docs.items()]
        (folder / "qrels" / f"{split}.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return folder


@pytest.fixture(autouse=True, scope="session")
def _scratch_caches(tmp_path_factory):
    """Fine-tuned models and embedding caches of the tests go to a temporary folder, not ~/.cache or runs/."""
    scratch = tmp_path_factory.mktemp("harness-scratch")
    patcher = pytest.MonkeyPatch()
    patcher.setenv("HARNESS_RUNS_DIR", str(scratch / "runs"))
    patcher.setenv("HARNESS_EMBEDDING_CACHE", str(scratch / "embeddings"))
    yield scratch
    patcher.undo()


@pytest.fixture
def tiny_task_dir(tmp_path: Path) -> Path:
    return write_beir(tmp_path / "tiny", *tiny_corpus())


def _vocabulary() -> list[str]:
    words = set(FILLER) | {w for subs in TOPICS.values() for sub, ws in subs.items() for w in [sub, *ws]}
    words |= set(TOPICS) | {str(i) for i in range(10)}
    return ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *sorted(words)]


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory) -> Path:
    """A 2-layer random BERT (hidden 32) with a word-level tokenizer, saved as a sentence-transformers folder."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    folder = tmp_path_factory.mktemp("tiny-bert")
    vocab = {w: i for i, w in enumerate(_vocabulary())}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    backend.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]"
    )
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64)
    raw = folder / "raw"
    BertModel(config).save_pretrained(raw)
    tokenizer.save_pretrained(raw)
    transformer = Transformer(str(raw), max_seq_length=48)
    model = SentenceTransformer(modules=[transformer, Pooling(transformer.get_embedding_dimension(), "mean")])
    model.save(str(folder / "st"))
    return folder / "st"


@pytest.fixture
def tiny_baselines(tmp_path, tiny_bert_dir) -> Path:
    """A baselines folder whose frozen config points at the tiny BERT (fp32, no progress bars)."""
    folder = tmp_path / "baselines"
    folder.mkdir()
    (folder / "frozen.toml").write_text(f'method = "frozen"\nmodel = "{tiny_bert_dir}"\nprecision = "fp32"\nbatch_size = 8\n')
    (folder / "bm25.toml").write_text('method = "bm25"\n')
    return folder
