"""Text generation shared by the RAG answer proxies and `make-queries`: a local causal LM as a plain callable
(prompts -> texts; greedy or seeded sampling, through its chat template) and a JSONL cache of generated texts
keyed by what decides them, rewritten atomically after every batch, so nothing is generated twice."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Callable, Sequence

from harness import atomic
from harness.errors import HarnessError, InputError

Generate = Callable[[list[str]], list[str]]


def generator_fingerprint(generate: Generate, fingerprint: str | None, caller: str) -> str:
    fingerprint = fingerprint or getattr(generate, "fingerprint", None)
    if not fingerprint:
        raise HarnessError(f"{caller} needs a generator fingerprint: pass fingerprint= or give the callable a `fingerprint`")
    return fingerprint


def prompt_sha256(prompt: str) -> str:
    return hashlib.sha256(prompt.encode("utf-8")).hexdigest()


def generate_cached(requests: Sequence[tuple[tuple, str]], generate: Generate, cache_path: Path, record_type: type,
                    batch_size: int) -> dict[tuple, Any]:
    """A record per `(key, prompt)` request: the cached one, or `record_type(*key, text)` with a newly generated text.

    A record type is a frozen dataclass whose fields are the key's, in order, then `text`. Missing texts are
    generated `batch_size` prompts per `generate` call, and the JSONL cache is rewritten atomically after
    every call, so an interrupted run keeps what it generated and a rerun generates only the rest.
    """
    cached = read_generation_cache(cache_path, record_type)
    missing = [(key, prompt) for key, prompt in dict(requests).items() if key not in cached]
    for start in range(0, len(missing), batch_size):
        batch = missing[start : start + batch_size]
        texts = generate([prompt for _, prompt in batch])
        if len(texts) != len(batch):
            raise HarnessError(f"the generator returned {len(texts)} texts for {len(batch)} prompts")
        for (key, _), text in zip(batch, texts):
            cached[key] = record_type(*key, text)
        write_generation_cache(cache_path, cached.values())
    return {key: cached[key] for key, _ in requests}


def _record_key(record) -> tuple:
    return tuple(getattr(record, f.name) for f in fields(record) if f.name != "text")


def read_generation_cache(path: Path, record_type: type) -> dict[tuple, Any]:
    """key -> record from a JSONL cache (JSON lists become tuples); a bad line raises `InputError` with its number."""
    if not path.exists():
        return {}
    cached = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
            record = record_type(**{f.name: _tuples(data[f.name]) for f in fields(record_type)})
        except json.JSONDecodeError as exc:
            raise InputError(path, number, f"malformed JSON ({exc.msg} at column {exc.colno})") from None
        except (KeyError, TypeError) as exc:
            raise InputError(path, number, f"not a {record_type.__name__} record (missing or bad field {exc})") from None
        cached[_record_key(record)] = record
    return cached


def _tuples(value):
    return tuple(value) if isinstance(value, list) else value


def write_generation_cache(path: Path, records) -> None:
    lines = [json.dumps(asdict(record), ensure_ascii=False) for record in records]
    atomic.write_text(path, "".join(line + "\n" for line in lines))


@dataclass(frozen=True)
class Sampling:
    """Seeded sampling instead of greedy decoding. Each `generate` call reseeds from `seed` and its prompts,
    so a batch's texts depend on the batch alone, not on what was generated before it."""

    temperature: float = 0.8
    top_p: float = 0.95
    seed: int = 0

    def batch_seed(self, prompts: Sequence[str]) -> int:
        digest = hashlib.sha256(f"{self.seed}".encode())
        for prompt in prompts:
            digest.update(b"\0" + prompt.encode("utf-8"))
        return int(digest.hexdigest()[:15], 16)


class CausalLMGenerator:
    """Greedy (or, with `sampling`, seeded sampled) texts from a local causal LM
    (e.g. `harness.llm.load_causal_lm("smollm2", device)`), prompted through its chat template when it has one."""

    def __init__(self, model, tokenizer, max_new_tokens: int = 128, name: str | None = None, sampling: Sampling | None = None):
        name = name or getattr(model.config, "name_or_path", "")
        if not name:
            raise HarnessError("the causal LM has no name_or_path: pass name= so cached answers can be told apart")
        if tokenizer.pad_token is None:  # batched generation pads; decoder-only tokenizers often lack a pad token
            tokenizer.pad_token = tokenizer.eos_token
        self.model, self.tokenizer, self.max_new_tokens, self.sampling = model, tokenizer, max_new_tokens, sampling
        self.chat = bool(getattr(tokenizer, "chat_template", None))
        decoding = "greedy" if sampling is None else (
            f"sample(temperature={sampling.temperature},top_p={sampling.top_p},seed={sampling.seed})")
        self.fingerprint = f"{name}|{decoding}|max_new_tokens={max_new_tokens}|{model.dtype}|chat={self.chat}"

    def __call__(self, prompts: list[str]) -> list[str]:
        import torch

        if self.chat:
            prompts = [
                self.tokenizer.apply_chat_template([{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True)
                for p in prompts
            ]
        # left padding keeps every prompt's last token next to its first generated one
        batch = self.tokenizer(prompts, return_tensors="pt", padding=True, padding_side="left", add_special_tokens=not self.chat)
        batch = batch.to(self.model.device)
        decoding = {"do_sample": False}
        if self.sampling is not None:
            decoding = {"do_sample": True, "temperature": self.sampling.temperature, "top_p": self.sampling.top_p}
        cuda = [self.model.device] if self.model.device.type == "cuda" else []
        with torch.inference_mode(), torch.random.fork_rng(devices=cuda):  # the caller's RNG state is left as it was
            if self.sampling is not None:
                torch.manual_seed(self.sampling.batch_seed(prompts))
            output = self.model.generate(
                **batch, max_new_tokens=self.max_new_tokens, pad_token_id=self.tokenizer.pad_token_id, **decoding
            )
        new_tokens = output[:, batch["input_ids"].shape[1] :]
        return [text.strip() for text in self.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)]


def causal_lm_generator(model, tokenizer, max_new_tokens: int = 128, name: str | None = None,
                        sampling: Sampling | None = None) -> CausalLMGenerator:
    return CausalLMGenerator(model, tokenizer, max_new_tokens, name, sampling)
