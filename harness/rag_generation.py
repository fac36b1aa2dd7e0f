"""Generator-based RAG proxies (opt-in): answer each query from its top-k contexts, then score support.

`generate_answers` asks a plain callable (prompts -> answers; `causal_lm_generator` wraps a local
causal LM) and caches every answer in a JSONL file keyed by query id, context ids, generator
fingerprint and a hash of the prompt, rewritten atomically after each batch, so proxies can be
recomputed, and an interrupted run resumed, without regenerating. That cache (`generate_cached`, in
`harness.generation`) is shared with `harness.synthetic_queries`, which caches generated queries the same way.
The queries answered are a fixed, seeded sample of the split (`max_queries`, `sample_seed`): the same
queries for every method and training seed, so rows are paired (the per-query outcomes are kept for paired
tests). `answer_support_scores` then scores each
answer sentence against the retrieved contexts and against the gold documents, with no LLM judge.

A sentence that says the passages do not hold the answer (`is_abstention`: a negation such as "do not
contain" or "no information" next to a word for the sources, or "cannot answer") is an abstention: the
prompt asks for one when the contexts lack the answer, so it is never counted as unsupported. An answer
whose every sentence abstains is an abstaining answer. Names (`k` = contexts per prompt, `ref` =
`context` or `gold`):

- `hallucinated_answer_rate_{method}_{ref}_at_{k}`: share of the non-empty answers with at least one
  unsupported (non-abstaining) sentence; abstaining answers count as not hallucinated. The headline.
- `unsupported_sentence_rate_{method}_{ref}_at_{k}`: mean over non-empty answers of the share of their
  sentences that are unsupported (abstaining sentences count as supported).
- `answer_support_{method}_{ref}_at_{k}`: mean over answers with a non-abstaining sentence of the mean
  support of those sentences.
- `answer_abstention_rate_at_{k}`: share of the non-empty answers that abstain; read it beside the
  rates above, since a generator that always abstains never hallucinates.
  `answer_abstention_rate_with_gold_at_{k}`: the same over queries whose top k held a relevant document
  (abstaining there is a miss, not caution).
- `answer_empty_rate_at_{k}`: share of answers without a sentence that has content tokens; every other
  metric is over the other answers.

`method` is `lexical` (a sentence's support is the share of its content tokens, lower-cased words and
ids without English stop words, found in the union of the reference texts; unsupported below
`lexical_threshold`) or `nli` (the entailment probability of the sentence, maximised over chunks of the
reference texts of at most `nli_chunk_words` words cut at sentence ends, so a cross-encoder never
truncates a long document away; unsupported below `nli_threshold`; only with an NLI scorer, which
`cross_encoder_nli` loads from a local folder). Lexical support measures copying, not truth: a
generator that pastes a passage scores as fully supported.

`context` references are the documents the prompt held, `gold` ones the query's relevant (score > 0)
documents; both are scored by their full text even where the prompt cut a context to
`max_context_chars`. Queries without a relevant document have no gold scores. Sentences are split
at `.`, `!` or `?` followed by white space, and at line breaks; an unfinished last sentence that follows a
finished one (cut by `max_new_tokens`) is left out.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

from harness.errors import HarnessError
from harness.generation import Generate, generate_cached, generator_fingerprint, prompt_sha256
from harness.metrics.rag import ranked_ids
from harness.search import Run
from harness.task import Task

PROMPT_TEMPLATE = (
    "Answer using only the numbered context passages below. "
    "If they do not contain the answer, say that they do not.\n\n{contexts}\n\nQuestion: {query}\nAnswer:"
)
_TOKEN = re.compile(r"[a-z0-9]+(?:[._-][a-z0-9]+)*")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")
_CLOSING = ".!?:;)]\"'"
_LIST_MARKER = re.compile(r"\d{1,2}[.)]|\[\d{1,2}\]")
# an abstention either says the sources lack something ("the passages do not mention X", "no information
# about X is given in the context") or declines outright ("cannot answer", "I don't know")
_SOURCE_WORD = re.compile(r"\b(?:passages?|contexts?|documents?|texts?|sources?|excerpts?|provided|given)\b", re.I)
_NEGATED_CONTENT = re.compile(
    r"\b(?:(?:do|does|did|is|are|was|were)\s*(?:not|n't)|no|not|none of|neither)\b[^.!?]{0,60}?"
    r"\b(?:contain|provide|mention|include|specify|state|say|give|answer|address|discuss|information|details?)", re.I)
_DECLINES = re.compile(
    r"\b(?:cannot|can't|can not|unable to|not able to)\s+(?:answer|determine|find|tell|say)\b|"
    r"\b(?:not enough|insufficient|no relevant) information\b|\bi (?:do not|don't) know\b", re.I)
NLIScorer = Callable[[list[tuple[str, str]]], np.ndarray]  # (premise, hypothesis) pairs -> P(entailment)


@dataclass(frozen=True)
class GenerationSettings:
    prompt_template: str = PROMPT_TEMPLATE  # fields: {contexts}, {query}
    max_context_chars: int = 1500  # per context, so k contexts fit a small LM's window
    batch_size: int = 8  # prompts per `generate` call; the cache is saved after each call
    max_queries: int | None = None  # a seeded sample of N query ids; None = all of the split
    sample_seed: int = 0  # fixed across methods and training seeds, so every row answers the same queries


@dataclass(frozen=True)
class SupportSettings:
    lexical_threshold: float = 0.5
    nli_threshold: float = 0.5
    nli_chunk_words: int = 200  # premise length: NLI cross-encoders truncate near 512 tokens


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
    for qid in answered_queries(task, split, settings):
        context_ids = tuple(ranked_ids(run.get(qid, {}), k))
        prompt = build_prompt(task, qid, context_ids, settings)
        requests.append(((qid, context_ids, fingerprint, prompt_sha256(prompt)), prompt))
    records = generate_cached(requests, generate, Path(cache_path), Answer, settings.batch_size)
    return {key[0]: records[key] for key, _ in requests}


def answered_queries(task: Task, split: str, settings: GenerationSettings) -> list[str]:
    """The split's query ids, or a seeded sample of `max_queries` of them, in sorted order."""
    query_ids = sorted(task.qrels.get(split, {}))
    if settings.max_queries is None or settings.max_queries >= len(query_ids):
        return query_ids
    return sorted(random.Random(settings.sample_seed).sample(query_ids, settings.max_queries))


def is_abstention(sentence: str) -> bool:
    """Does the sentence say the sources lack the answer, rather than state something?"""
    negated = _NEGATED_CONTENT.search(sentence) and _SOURCE_WORD.search(sentence)
    return bool(negated or _DECLINES.search(sentence))


def text_chunks(text: str, max_words: int) -> list[str]:
    """Consecutive sentences packed into chunks of at most `max_words` words (a longer sentence is cut)."""
    chunks, current = [], []
    for sentence in _SENTENCE_END.split(text.strip()):
        words = sentence.split()
        if current and len(current) + len(words) > max_words:
            chunks.append(" ".join(current))
            current = []
        while len(words) > max_words:
            chunks.append(" ".join(words[:max_words]))
            words = words[max_words:]
        current += words
    if current:
        chunks.append(" ".join(current))
    return chunks


def content_tokens(text: str) -> set[str]:
    return {token for token in _TOKEN.findall(text.lower()) if token not in ENGLISH_STOP_WORDS}


def answer_sentences(answer: str) -> list[str]:
    """The answer's sentences that carry at least one content token, less an unfinished last one.

    A last sentence without closing punctuation after a finished one was cut by the length limit
    (`max_new_tokens`): a fragment such as "Host binaries may" is no claim, so it is not scored."""
    pieces, marker = [], ""
    for piece in (p.strip() for p in _SENTENCE_END.split(answer.strip())):
        if _LIST_MARKER.fullmatch(piece):  # "1." of a numbered list opens the next sentence, it ends none
            marker = f"{marker}{piece} "
            continue
        pieces.append(marker + piece)
        marker = ""
    sentences = [s for s in pieces if content_tokens(s)]
    if len(sentences) > 1 and sentences[-2][-1] in _CLOSING and sentences[-1][-1] not in _CLOSING:
        sentences.pop()
    return sentences


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
) -> AnswerSupport:
    """Support proxies for answers generated from top-k contexts (see the module docstring), with each
    answered query's outcome for the `hallucinated_answer_rate_*` metrics (1 = hallucinated), for paired tests."""
    qrels = task.qrels.get(split, {})
    answers = {qid: a for qid, a in answers.items() if qid in qrels}
    if not answers:
        return AnswerSupport({}, {})
    if any(len(a.context_ids) > k for a in answers.values()):
        raise ValueError(f"answers were generated from more than k={k} contexts")
    per_reference: dict[tuple[str, str], dict[str, tuple[float | None, float, bool]]] = {}
    empty, abstained, with_gold, abstained_with_gold = 0, 0, 0, 0
    for qid, answer in answers.items():
        sentences = answer_sentences(answer.text)
        if not sentences:
            empty += 1
            continue
        claims = [s for s in sentences if not is_abstention(s)]
        gold_in_context = any(qrels[qid].get(d, 0) > 0 for d in answer.context_ids)
        abstained += not claims
        with_gold += gold_in_context
        abstained_with_gold += gold_in_context and not claims
        references = {
            "context": [task.corpus[d].full_text for d in answer.context_ids],
            "gold": [task.corpus[d].full_text for d, rel in qrels[qid].items() if rel > 0],
        }
        for ref, texts in references.items():
            if not texts:
                continue
            tokens = set().union(*(content_tokens(t) for t in texts))
            lexical = [lexical_support(s, tokens) for s in claims]
            per_reference.setdefault(("lexical", ref), {})[qid] = _answer_support(
                lexical, len(sentences), settings.lexical_threshold)
            if nli is not None:
                premises = [c for t in texts for c in text_chunks(t, settings.nli_chunk_words)]
                entailment = _nli_support(nli, premises, claims) if claims else []
                per_reference.setdefault(("nli", ref), {})[qid] = _answer_support(
                    entailment, len(sentences), settings.nli_threshold)
    answered = len(answers) - empty
    scores = {f"answer_empty_rate_at_{k}": empty / len(answers)}
    if answered:
        scores[f"answer_abstention_rate_at_{k}"] = abstained / answered
    if with_gold:
        scores[f"answer_abstention_rate_with_gold_at_{k}"] = abstained_with_gold / with_gold
    per_query: dict[str, dict[str, float]] = {}
    for (method, ref), by_query in per_reference.items():
        rows = list(by_query.values())
        supports = [support for support, _, _ in rows if support is not None]
        if supports:
            scores[f"answer_support_{method}_{ref}_at_{k}"] = float(np.mean(supports))
        scores[f"unsupported_sentence_rate_{method}_{ref}_at_{k}"] = float(np.mean([rate for _, rate, _ in rows]))
        hallucinated = f"hallucinated_answer_rate_{method}_{ref}_at_{k}"
        per_query[hallucinated] = {qid: float(bad) for qid, (_, _, bad) in sorted(by_query.items())}
        scores[hallucinated] = float(np.mean(list(per_query[hallucinated].values())))
    return AnswerSupport(scores, per_query)


@dataclass(frozen=True)
class AnswerSupport:
    scores: dict[str, float]
    per_query: dict[str, dict[str, float]]  # hallucinated_answer_rate_* metric -> query id -> 1.0 (hallucinated) or 0.0


def _answer_support(claim_support: list[float], n_sentences: int, threshold: float) -> tuple[float | None, float, bool]:
    """(mean support of the non-abstaining sentences or None, share of all sentences unsupported, any unsupported)."""
    values = np.asarray(claim_support, dtype=float)
    unsupported = int((values < threshold).sum())
    return (float(values.mean()) if len(values) else None), unsupported / n_sentences, unsupported > 0


def _nli_support(nli: NLIScorer, premises: list[str], sentences: list[str]) -> list[float]:
    """Per sentence, the highest entailment probability over the premises (chunks of the reference texts)."""
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
