"""Generator-based RAG proxies (opt-in): answer each query from its top-k contexts, then score support.

`generate_answers` asks a plain callable (prompts -> answers; `causal_lm_generator` wraps a local
causal LM) and caches every answer in a JSONL file keyed by query id, context ids, generator
fingerprint and a hash of the prompt, rewritten atomically after each batch, so proxies can be
recomputed, and an interrupted run resumed, without regenerating. That cache (`generate_cached`, in
`harness.generation`) is shared with `harness.synthetic_queries`, which caches generated queries the same way. `answer_support_scores` then
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

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

from harness.errors import HarnessError
from harness.generation import Generate, generate_cached, generator_fingerprint, prompt_sha256
from harness.generation import causal_lm_generator  # noqa: F401  (kept importable from here)
from harness.metrics.rag import ranked_ids
from harness.search import Run
from harness.task import Task

PROMPT_TEMPLATE = (
    "Answer using only the numbered context passages below. "
    "If they do not contain the answer, say that they do not.\n\n{contexts}\n\nQuestion: {query}\nAnswer:"
)
_TOKEN = re.compile(r"[a-z0-9]+(?:[._-][a-z0-9]+)*")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")
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
