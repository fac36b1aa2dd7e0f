"""RAG proxies: retrieval-only metrics on a hand-computed run, then cached generation and answer support."""

from __future__ import annotations

import json

import numpy as np
import pytest

from harness.errors import HarnessError, InputError
from harness.generation import causal_lm_generator
from harness.metrics.rag import context_precision, rag_scores, ranked_ids
from harness.metrics.retrieval import retrieval_scores
from harness.rag_generation import (
    Answer,
    GenerationSettings,
    answer_support_scores,
    build_prompt,
    cross_encoder_nli,
    generate_answers,
)
from harness.task import Document, Task

CORPUS = {
    "a1": Document("Port scan", "Adversaries scan ports to find open services.", ("A", "A1")),
    "a1b": Document("Host sweep", "Adversaries sweep hosts.", ("A", "A1")),
    "a2": Document("Sniffing", "Attackers capture network traffic.", ("A", "A2")),
    "b1": Document("Phishing", "Adversaries send phishing email.", ("B", "B1")),
    "b1x": Document("Spearphishing link", "Phishing email with a link.", ("B", "B1", "B1x")),
    "u": Document("", "An unlabelled note about packets."),
}
QRELS = {
    "q1": {"a1": 1},
    "q2": {"b1": 1, "a2": 1},
    "q3": {"a1": 1},
    "q4": {"a1": 1},
    "q5": {"u": 1},
}
RUN = {
    "q1": {"a2": 0.9, "b1": 0.8, "a1": 0.7, "u": 0.6, "a1b": 0.5},
    "q2": {"b1x": 0.9, "a1": 0.8, "b1": 0.7},
    "q3": {"a2": 0.5, "a1": 0.5},  # a tie: ranked by id, descending, as pytrec_eval ranks
    "q5": {"u": 1.0, "a1": 0.5},  # q4 retrieved nothing
}


def toy_task(corpus=CORPUS) -> Task:
    queries = {q: f"question {q}" for q in QRELS}
    return Task(name="toy", corpus=corpus, queries=queries, qrels={"test": QRELS})


def test_context_precision_averages_precision_at_each_relevant_rank():
    assert context_precision(["r1", "n1", "r2", "n2", "n3"], {"r1", "r2"}) == pytest.approx((1 + 2 / 3) / 2)
    assert context_precision(["n1", "r1"], {"r1", "r9"}) == pytest.approx(1 / 2)  # divided by relevant retrieved, not all relevant
    assert context_precision(["n1", "n2"], {"r1"}) == 0.0
    assert context_precision([], {"r1"}) == 0.0


def test_ties_rank_by_document_id_descending():
    assert ranked_ids({"a2": 0.5, "a1": 0.5, "b": 0.9}, 2) == ["b", "a2"]


def test_rag_scores_on_a_hand_computed_run():
    scores = rag_scores(toy_task(), "test", RUN, k_values=(1, 3))
    expected = {
        "gold_context_hit_rate_at_1": 1 / 5,  # only q5
        "context_precision_at_1": 1 / 5,
        # contexts a2 | b1x | a2 against gold a1 | b1, a2 | a1 (q4 has no contexts, q5's gold is unlabelled)
        "wrong_branch_rate_l1_at_1": 0.0,
        "wrong_branch_rate_l2_at_1": 2 / 3,
        "wrong_branch_rate_l3_at_1": 2 / 3,  # b1x is a child of gold b1, so it stays on its branch
        "wrong_branch_rate_l1_at_1_on_miss": 0.0,
        "wrong_branch_rate_l2_at_1_on_miss": 2 / 3,
        "wrong_branch_rate_l3_at_1_on_miss": 2 / 3,
        "gold_context_hit_rate_at_3": 4 / 5,
        "context_precision_at_3": (1 / 3 + 1 / 3 + 1 / 2 + 0 + 1) / 5,
        # q1: a2 b1 a1 -> b1 off at l1, a2 and b1 off at l2; q2: b1x a1 b1 -> a1 shares A with gold a2 at l1 only;
        # q3: a2 a1 -> a2 off from l2
        "wrong_branch_rate_l1_at_3": (1 / 3 + 0 + 0) / 3,
        "wrong_branch_rate_l2_at_3": (2 / 3 + 1 / 3 + 1 / 2) / 3,
        "wrong_branch_rate_l3_at_3": (2 / 3 + 1 / 3 + 1 / 2) / 3,
    }
    assert scores == pytest.approx(expected)


def test_gold_context_hit_rate_equals_pytrec_hit_rate():
    scores = rag_scores(toy_task(), "test", RUN, k_values=(1, 3, 5))
    reference = retrieval_scores(QRELS, RUN, k_values=(1, 3, 5))
    for k in (1, 3, 5):
        assert scores[f"gold_context_hit_rate_at_{k}"] == pytest.approx(reference[f"hit_rate_at_{k}"])


def test_unlabelled_contexts_are_left_out_of_the_wrong_branch_share():
    scores = rag_scores(toy_task(), "test", RUN, k_values=(5,))
    # q1's top 5 holds u (unlabelled): shares are over a2 b1 a1 a1b
    assert scores["wrong_branch_rate_l2_at_5"] == pytest.approx((2 / 4 + 1 / 3 + 1 / 2) / 3)


def test_a_task_without_labels_has_no_wrong_branch_rates():
    corpus = {d: Document(doc.title, doc.text) for d, doc in CORPUS.items()}
    scores = rag_scores(toy_task(corpus), "test", RUN, k_values=(1,))
    assert set(scores) == {"gold_context_hit_rate_at_1", "context_precision_at_1"}


class FakeGenerator:
    """Deterministic: answers with the first context line of the prompt; records every call."""

    def __init__(self, fingerprint: str = "fake-v1", fail_on_call: int | None = None):
        self.fingerprint, self.fail_on_call, self.calls = fingerprint, fail_on_call, []

    def __call__(self, prompts: list[str]) -> list[str]:
        if self.fail_on_call == len(self.calls):
            raise RuntimeError("generator crashed")
        self.calls.append(prompts)
        return [next((line for line in p.splitlines() if line.startswith("[1]")), "No context.") for p in prompts]


def test_prompt_numbers_the_contexts_in_rank_order_and_ends_with_the_question():
    prompt = build_prompt(toy_task(), "q3", ["a2", "a1"], GenerationSettings(max_context_chars=20))
    assert "[1] Sniffing Attackers c\n\n[2] Port scan Adversarie" in prompt
    assert prompt.endswith("Question: question q3\nAnswer:")


def test_generated_answers_are_cached_and_reused(tmp_path):
    cache = tmp_path / "answers.jsonl"
    first = FakeGenerator()
    answers = generate_answers(toy_task(), "test", RUN, first, k=1, cache_path=cache)
    assert [len(batch) for batch in first.calls] == [5]
    assert answers["q1"] == Answer("q1", ("a2",), "fake-v1", answers["q1"].prompt_sha256, "[1] Sniffing Attackers capture network traffic.")
    assert answers["q4"].context_ids == ()
    again = FakeGenerator()
    assert generate_answers(toy_task(), "test", RUN, again, k=1, cache_path=cache) == answers
    assert again.calls == []
    records = [json.loads(line) for line in cache.read_text().splitlines()]
    assert sorted(r["query_id"] for r in records) == ["q1", "q2", "q3", "q4", "q5"]


def test_new_contexts_or_a_new_generator_regenerate_only_what_changed(tmp_path):
    cache = tmp_path / "answers.jsonl"
    generate_answers(toy_task(), "test", RUN, FakeGenerator(), k=1, cache_path=cache)
    deeper = FakeGenerator()
    generate_answers(toy_task(), "test", RUN, deeper, k=3, cache_path=cache)
    assert len(deeper.calls[0]) == 4  # q4 has no contexts at either depth: its answer is reused
    other = FakeGenerator("fake-v2")
    generate_answers(toy_task(), "test", RUN, other, k=1, cache_path=cache)
    assert len(other.calls[0]) == 5
    assert len(cache.read_text().splitlines()) == 5 + 4 + 5


def test_an_interrupted_generation_keeps_the_batches_already_answered(tmp_path):
    cache = tmp_path / "answers.jsonl"
    settings = GenerationSettings(batch_size=2)
    with pytest.raises(RuntimeError):
        generate_answers(toy_task(), "test", RUN, FakeGenerator(fail_on_call=1), k=1, cache_path=cache, settings=settings)
    assert len(cache.read_text().splitlines()) == 2
    resumed = FakeGenerator()
    generate_answers(toy_task(), "test", RUN, resumed, k=1, cache_path=cache, settings=settings)
    assert [len(batch) for batch in resumed.calls] == [2, 1]


def test_max_queries_takes_a_seeded_sample_that_every_method_shares(tmp_path):
    def sample(run, seed):
        settings = GenerationSettings(max_queries=2, sample_seed=seed)
        return sorted(generate_answers(toy_task(), "test", run, FakeGenerator(), k=1, cache_path=tmp_path / "a.jsonl",
                                       settings=settings))

    other_run = {qid: dict(reversed(list(docs.items()))) for qid, docs in RUN.items()}
    assert len(sample(RUN, 0)) == 2 and sample(RUN, 0) == sample(other_run, 0)  # the same queries for another ranking
    assert len({tuple(sample(RUN, seed)) for seed in range(10)}) > 1  # a seeded draw, not the first ids by name


def test_a_generator_without_fingerprint_is_refused(tmp_path):
    with pytest.raises(HarnessError, match="fingerprint"):
        generate_answers(toy_task(), "test", RUN, lambda prompts: prompts, k=1, cache_path=tmp_path / "a.jsonl")


def test_a_corrupt_cache_line_is_reported_with_its_line_number(tmp_path):
    cache = tmp_path / "answers.jsonl"
    generate_answers(toy_task(), "test", RUN, FakeGenerator(), k=1, cache_path=cache)
    cache.write_text(cache.read_text() + "{not json\n")
    with pytest.raises(InputError) as error:
        generate_answers(toy_task(), "test", RUN, FakeGenerator(), k=1, cache_path=cache)
    assert (error.value.line, error.value.problem.split(" (")[0]) == (6, "malformed JSON")


def answer(query_id: str, context_ids: tuple[str, ...], text: str) -> Answer:
    return Answer(query_id, context_ids, "hand-written", "-", text)


def test_lexical_support_and_unsupported_sentences_on_hand_written_answers():
    answers = {
        # sentence 1: adversaries, scan, ports -> all in context a1 and gold a1; sentence 2: moon, cheese -> none
        "q1": answer("q1", ("a1", "b1"), "Adversaries scan ports. The moon is made of cheese."),
        # sentence: attackers, send, phishing, email -> context b1 has send, phishing, email; gold b1 + a2 have all four
        "q2": answer("q2", ("b1",), "Attackers send phishing email!"),
        "q3": answer("q3", ("a2",), "Of the, is."),  # stop words only: an empty answer
    }
    support = answer_support_scores(toy_task(), "test", answers, k=2)
    scores = support.scores
    # each answered query's outcome, kept for paired tests; the empty q3 is in no metric
    assert support.per_query == {"hallucinated_answer_rate_lexical_context_at_2": {"q1": 1.0, "q2": 0.0},
                                 "hallucinated_answer_rate_lexical_gold_at_2": {"q1": 1.0, "q2": 0.0}}
    assert scores == pytest.approx({
        "answer_empty_rate_at_2": 1 / 3,
        "answer_abstention_rate_at_2": 0.0,
        "answer_abstention_rate_with_gold_at_2": 0.0,  # q1's contexts hold its gold a1
        "answer_support_lexical_context_at_2": ((1 + 0) / 2 + 3 / 4) / 2,
        "unsupported_sentence_rate_lexical_context_at_2": (1 / 2 + 0) / 2,
        "hallucinated_answer_rate_lexical_context_at_2": (1 + 0) / 2,
        "answer_support_lexical_gold_at_2": ((1 + 0) / 2 + 1) / 2,
        "unsupported_sentence_rate_lexical_gold_at_2": (1 / 2 + 0) / 2,
        "hallucinated_answer_rate_lexical_gold_at_2": (1 + 0) / 2,
    })


def test_nli_support_takes_the_best_premise_per_sentence():
    def word_entailment(pairs):  # entailed (0.9) when every word of the hypothesis occurs in the premise
        return np.array([0.9 if set(h.lower().strip(".!").split()) <= set(p.lower().strip(".").split()) else 0.2 for p, h in pairs])

    answers = {"q2": answer("q2", ("a2", "b1"), "Adversaries send phishing email. Attackers phish.")}
    scores = answer_support_scores(toy_task(), "test", answers, k=2, nli=word_entailment).scores
    assert scores["answer_support_nli_context_at_2"] == pytest.approx((0.9 + 0.2) / 2)
    assert scores["unsupported_sentence_rate_nli_context_at_2"] == pytest.approx(1 / 2)
    assert scores["answer_support_nli_gold_at_2"] == pytest.approx((0.9 + 0.2) / 2)


def test_answers_from_more_contexts_than_k_are_refused():
    with pytest.raises(ValueError, match="k=1"):
        answer_support_scores(toy_task(), "test", {"q1": answer("q1", ("a1", "b1"), "Scan.")}, k=1)


def _tiny_tokenizer(tiny_bert_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tiny_bert_dir.parent / "raw"), local_files_only=True)


def test_cross_encoder_nli_returns_entailment_probabilities(tiny_bert_dir, tmp_path):
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    labels = {0: "contradiction", 1: "entailment", 2: "neutral"}
    config = BertConfig(vocab_size=_tiny_tokenizer(tiny_bert_dir).vocab_size, hidden_size=16, num_hidden_layers=1,
                        num_attention_heads=2, intermediate_size=32, id2label=labels, label2id={v: k for k, v in labels.items()})
    BertForSequenceClassification(config).save_pretrained(tmp_path / "nli")
    _tiny_tokenizer(tiny_bert_dir).save_pretrained(tmp_path / "nli")
    scorer = cross_encoder_nli(tmp_path / "nli")
    probabilities = scorer([("port scan of a host", "a port scan"), ("packet capture", "email lure")])
    assert probabilities.shape == (2,)
    assert np.all((probabilities > 0) & (probabilities < 1))

    config.id2label, config.label2id = {0: "LABEL_0", 1: "LABEL_1"}, {"LABEL_0": 0, "LABEL_1": 1}
    config.num_labels = 2
    BertForSequenceClassification(config).save_pretrained(tmp_path / "plain")
    _tiny_tokenizer(tiny_bert_dir).save_pretrained(tmp_path / "plain")
    with pytest.raises(HarnessError, match="entailment"):
        cross_encoder_nli(tmp_path / "plain")


def test_causal_lm_generator_answers_every_prompt_deterministically(tiny_bert_dir, tmp_path):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = _tiny_tokenizer(tiny_bert_dir)
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=tokenizer.vocab_size, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=256))
    with pytest.raises(HarnessError, match="name"):
        causal_lm_generator(model, tokenizer, max_new_tokens=3)
    generate = causal_lm_generator(model, tokenizer, max_new_tokens=3, name="tiny-llama")
    assert generate.fingerprint.startswith("tiny-llama|greedy|max_new_tokens=3|")
    answers = generate_answers(toy_task(), "test", RUN, generate, k=2, cache_path=tmp_path / "a.jsonl")
    assert sorted(answers) == ["q1", "q2", "q3", "q4", "q5"]
    assert all(len(a.text.split()) <= 3 for a in answers.values())
    assert generate(["port scan of a host"]) == generate(["port scan of a host"])
