"""Generator-based RAG proxies (opt-in): answer each query from its top-k contexts, then score support.

`generate_answers` asks a plain callable (prompts -> answers; `causal_lm_generator` wraps a local
causal LM) and caches every answer in a JSONL file keyed by query id, context ids, generator
fingerprint and a hash of the prompt, rewritten atomically after each batch, so proxies can be
recomputed, and an interrupted run resumed, without regenerating. That cache (`generate_cached`)
is shared with `harness.synthetic_queries`, which caches generated queries the same way. `answer_support_scores` then
scores each answer sentence against the retrieved contexts and against the gold documents, with
no LLM judge. Names (`k` = contexts per prompt, `ref` = `context` or `gold`):

- `answer_support_lexical_{ref}_at_{k}`: mean over answers of the mean over their sentences of the
  share of a sentence's content tokens (lower-cased words and ids, English stop words removed)
  found in the union of the reference texts.
- `unsupported_sentence_rate_lexical_{ref}_at_{k}`: mean over answers of the share of sentences
  whose lexical support is below `lexical_threshold`.
- `answer_support_nli_{ref}_at_{k}`, `unsupported_sentence_rate_nli_{ref}_at_{k}`: the same with the
  entailment probability of the sentence given a reference text, maximised over the reference
  texts (one premise per document, as AlignScore and SummaC take the best chunk), and
  `nli_threshold`; only when an NLI scorer is given (`cross_encoder_nli` loads a local one).
- `answer_empty_rate_at_{k}`: share of answers without a sentence that has content tokens; the
  support means are over the other answers.

`context` references are the documents the prompt held, `gold` ones the query's relevant (score > 0)
documents; both are scored by their full text even where the prompt cut a context to
`max_context_chars`. Queries without a relevant document have no gold scores. Sentences are split
at `.`, `!` or `?` followed by white space, and at line breaks.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

from harness import atomic
from harness.errors import HarnessError, InputError
from harness.metrics.rag import ranked_ids
from harness.search import Run
from harness.task import Task

PROMPT_TEMPLATE = (
    "Answer using only the numbered context passages below. "
    "If they do not contain the answer, say that they do not.\n\n{contexts}\n\nQuestion: {query}\nAnswer:"
)
_TOKEN = re.compile(r"[a-z0-9]+(?:[._-][a-z0-9]+)*")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")
Generate = Callable[[list[str]], list[str]]
NLIScorer = Callable[[list[tuple[str, str]]], np.ndarray]  # (premise, hypothesis) pairs -> P(entailment)


@dataclass(frozen=True)
class GenerationSettings:
    prompt_template: str = PROMPT_TEMPLATE  # fields: {contexts}, {query}
    max_context_chars: int = 1500  # per context, so k contexts fit a small LM's window
    batch_size: int = 8  # prompts per `generate` call; the cache is saved after each call
    max_queries: int | None = None  # the first N query ids in sorted order; None = all of the split


@dataclass(frozen=True)
class SupportSettings:
    lexical_threshold: float = 0.5
    nli_threshold: float = 0.5


@dataclass(frozen=True)
class Answer:
    query_id: str
    context_ids: tuple[str, ...]
    generator: str
    prompt_sha256: str
    text: str

    @property
    def key(self) -> tuple:
        return (self.query_id, self.context_ids, self.generator, self.prompt_sha256)


def build_prompt(task: Task, query_id: str, context_ids: Sequence[str], settings: GenerationSettings) -> str:
    contexts = "\n\n".join(
        f"[{rank}] {task.corpus[d].full_text[: settings.max_context_chars]}" for rank, d in enumerate(context_ids, start=1)
    )
    return settings.prompt_template.format(contexts=contexts, query=task.queries[query_id])


def generate_answers(
    task: Task,
    split: str,
    run: Run,
    generate: Generate,
    k: int,
    cache_path: Path,
    *,
    fingerprint: str | None = None,
    settings: GenerationSettings = GenerationSettings(),
) -> dict[str, Answer]:
    """An answer per query of `split` from its top-k contexts; cached answers are reused, new ones cached.

    `fingerprint` names the generator (model, decoding settings); it defaults to `generate.fingerprint`.
    """
    fingerprint = generator_fingerprint(generate, fingerprint, "generate_answers")
    requests = []
    for qid in sorted(task.qrels.get(split, {}))[: settings.max_queries]:
        context_ids = tuple(ranked_ids(run.get(qid, {}), k))
        prompt = build_prompt(task, qid, context_ids, settings)
        requests.append(((qid, context_ids, fingerprint, prompt_sha256(prompt)), prompt))
    records = generate_cached(requests, generate, Path(cache_path), Answer, settings.batch_size)
    return {key[0]: records[key] for key, _ in requests}


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


def content_tokens(text: str) -> set[str]:
    return {token for token in _TOKEN.findall(text.lower()) if token not in ENGLISH_STOP_WORDS}


def answer_sentences(answer: str) -> list[str]:
    """The answer's sentences that carry at least one content token."""
    return [s.strip() for s in _SENTENCE_END.split(answer.strip()) if content_tokens(s)]


def lexical_support(sentence: str, reference_tokens: set[str]) -> float:
    tokens = content_tokens(sentence)
    return len(tokens & reference_tokens) / len(tokens)


def answer_support_scores(
    task: Task,
    split: str,
    answers: dict[str, Answer],
    k: int,
    nli: NLIScorer | None = None,
    settings: SupportSettings = SupportSettings(),
) -> dict[str, float]:
    """Support proxies for answers generated from top-k contexts (see the module docstring)."""
    qrels = task.qrels.get(split, {})
    answers = {qid: a for qid, a in answers.items() if qid in qrels}
    if not answers:
        return {}
    if any(len(a.context_ids) > k for a in answers.values()):
        raise ValueError(f"answers were generated from more than k={k} contexts")
    per_reference: dict[tuple[str, str], list[tuple[float, float]]] = {}
    empty = 0
    for qid, answer in answers.items():
        sentences = answer_sentences(answer.text)
        if not sentences:
            empty += 1
            continue
        references = {
            "context": [task.corpus[d].full_text for d in answer.context_ids],
            "gold": [task.corpus[d].full_text for d, rel in qrels[qid].items() if rel > 0],
        }
        for ref, texts in references.items():
            if not texts:
                continue
            tokens = set().union(*(content_tokens(t) for t in texts))
            lexical = [lexical_support(s, tokens) for s in sentences]
            per_reference.setdefault(("lexical", ref), []).append(_support_and_unsupported(lexical, settings.lexical_threshold))
            if nli is not None:
                entailment = _nli_support(nli, texts, sentences)
                per_reference.setdefault(("nli", ref), []).append(_support_and_unsupported(entailment, settings.nli_threshold))
    scores = {f"answer_empty_rate_at_{k}": empty / len(answers)}
    for (method, ref), rows in per_reference.items():
        scores[f"answer_support_{method}_{ref}_at_{k}"] = float(np.mean([support for support, _ in rows]))
        scores[f"unsupported_sentence_rate_{method}_{ref}_at_{k}"] = float(np.mean([rate for _, rate in rows]))
    return scores


def _support_and_unsupported(sentence_support: list[float], threshold: float) -> tuple[float, float]:
    values = np.asarray(sentence_support, dtype=float)
    return float(values.mean()), float((values < threshold).mean())


def _nli_support(nli: NLIScorer, premises: list[str], sentences: list[str]) -> list[float]:
    """Per sentence, the highest entailment probability over the premises."""
    pairs = [(premise, sentence) for sentence in sentences for premise in premises]
    probabilities = np.asarray(nli(pairs), dtype=float).reshape(len(sentences), len(premises))
    return probabilities.max(axis=1).tolist()


def cross_encoder_nli(path: str | Path, device: str = "cpu", batch_size: int = 16) -> NLIScorer:
    """Entailment probabilities from a local sentence-transformers CrossEncoder NLI model folder."""
    from sentence_transformers import CrossEncoder

    # safetensors only: a .bin checkpoint would be unpickled
    model = CrossEncoder(str(path), device=device, local_files_only=True, model_kwargs={"use_safetensors": True})
    labels = {index: name.lower() for index, name in model.config.id2label.items()}
    entailment = [index for index, name in labels.items() if "entail" in name and "not" not in name]
    if len(entailment) != 1:
        raise HarnessError(f"NLI model {path} has no single entailment label among {sorted(labels.values())}")

    def score(pairs: list[tuple[str, str]]) -> np.ndarray:
        if not pairs:
            return np.zeros(0)
        probabilities = model.predict(pairs, batch_size=batch_size, apply_softmax=True, show_progress_bar=False)
        return np.asarray(probabilities, dtype=float)[:, entailment[0]]

    return score


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
