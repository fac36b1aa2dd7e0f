"""Generated answers: abstentions are not hallucinations, NLI scores sentences against chunks, and
`harness answer` adds answer scores to stored results without refitting."""

from __future__ import annotations

import json

import numpy as np
import pytest

from harness.cli import main
from harness.rag_generation import Answer, SupportSettings, answer_support_scores, is_abstention, text_chunks
from harness.task import Document, Task


@pytest.mark.parametrize("sentence", [
    "The passages do not contain the answer.",
    "The provided context does not mention Kerberoasting.",
    "There is no information about this in the passages.",
    "None of the documents address the question.",
    "I cannot answer this question.",
    "I don't know.",
    "Insufficient information is given.",
])
def test_sentences_that_say_the_sources_lack_the_answer_are_abstentions(sentence):
    assert is_abstention(sentence)


@pytest.mark.parametrize("sentence", [
    "Adversaries do not need administrator rights.",  # a negated claim about the world, not about the sources
    "The vulnerability does not include an authentication check.",
    "[1] Data from Local System Adversaries may search local system sources.",
    "The context is a phishing attack.",
])
def test_claims_are_not_abstentions(sentence):
    assert not is_abstention(sentence)


CORPUS = {
    "a": Document("Port scan", "Adversaries scan ports to find open services."),
    "b": Document("Phishing", "Adversaries send phishing email."),
    "long": Document("Notes", " ".join(["Filler words about nothing in particular."] * 60)
                     + " Kerberoasting requests service tickets."),
}


def toy_task() -> Task:
    qrels = {"q1": {"a": 1}, "q2": {"a": 1}, "q3": {"b": 1}, "q4": {"long": 1}}
    return Task(name="toy", corpus=CORPUS, queries={q: q for q in qrels}, qrels={"test": qrels})


def _answer(qid, contexts, text):
    return Answer(qid, contexts, "hand-written", "-", text)


def test_an_abstention_is_never_a_hallucination_and_is_counted_apart():
    answers = {
        "q1": _answer("q1", ("b",), "The passages do not contain the answer."),  # gold a not retrieved: right to abstain
        "q2": _answer("q2", ("a",), "The passages do not say. The moon is made of cheese."),  # abstains, then invents
        "q3": _answer("q3", ("b",), "I cannot answer this question."),  # gold b was there: a wrongful abstention
    }
    scores = answer_support_scores(toy_task(), "test", answers, k=1).scores
    assert scores["answer_abstention_rate_at_1"] == pytest.approx(2 / 3)  # q2 also states a claim
    assert scores["answer_abstention_rate_with_gold_at_1"] == pytest.approx(1 / 2)  # q2 and q3 had gold; q3 abstained
    assert scores["hallucinated_answer_rate_lexical_context_at_1"] == pytest.approx(1 / 3)  # only q2
    assert scores["unsupported_sentence_rate_lexical_context_at_1"] == pytest.approx((0 + 1 / 2 + 0) / 3)
    assert scores["answer_support_lexical_context_at_1"] == pytest.approx(0.0)  # q2's one claim, unsupported


def test_nli_premises_are_chunks_so_a_late_sentence_of_a_long_document_still_supports():
    seen = []

    def truncating_entailment(pairs):  # like a cross-encoder, it reads only the first 100 words of a premise
        seen.extend(len(p.split()) for p, _ in pairs)
        return np.array([0.9 if h.rstrip(".") in " ".join(p.split()[:100]) else 0.1 for p, h in pairs])

    answers = {"q4": _answer("q4", ("long",), "Kerberoasting requests service tickets.")}
    scores = answer_support_scores(toy_task(), "test", answers, k=1, nli=truncating_entailment,
                                   settings=SupportSettings(nli_chunk_words=50)).scores
    assert max(seen) <= 50 and len(seen) > 1
    assert scores["hallucinated_answer_rate_nli_context_at_1"] == 0.0
    assert scores["answer_support_nli_gold_at_1"] == pytest.approx(0.9)


def test_a_last_sentence_cut_by_the_length_limit_is_not_scored():
    from harness.rag_generation import answer_sentences

    assert answer_sentences("Adversaries scan ports. Host binaries may") == ["Adversaries scan ports."]
    assert answer_sentences("Adversaries scan ports") == ["Adversaries scan ports"]  # the only sentence stays
    assert answer_sentences("Scan ports:\nnmap finds services") == ["Scan ports:"]
    assert answer_sentences("1. Port scan\n2. Host sweep") == ["1. Port scan", "2. Host sweep"]  # a list is not cut


def test_text_chunks_keep_every_word_in_order_within_the_limit():
    text = "One two three. Four five six seven. " + "x " * 12
    chunks = text_chunks(text, 5)
    assert all(len(c.split()) <= 5 for c in chunks)
    assert " ".join(chunks).split() == text.split()


def _stored_bm25_result(tmp_path, tiny_task_dir, tiny_baselines):
    out = tmp_path / "results"
    assert main(["run", "--no-progress", "--baselines-dir", str(tiny_baselines), "--task-dir", str(tiny_task_dir),
                 "--methods", "bm25", "--out", str(out)]) == 0
    return out, next(out.rglob("*.json"))


def test_answer_adds_scores_to_a_stored_result_once_and_leaves_the_rest_as_it_was(tmp_path, tiny_task_dir, tiny_baselines):
    from llm_fixtures import save_tiny_llama

    out, path = _stored_bm25_result(tmp_path, tiny_task_dir, tiny_baselines)
    before = json.loads(path.read_text())
    llama = save_tiny_llama(tmp_path / "llama")
    args = ["answer", "--task-dir", str(tiny_task_dir), "--methods", "bm25", "--out", str(out), "--generator", str(llama),
            "--queries", "4", "--k", "2", "--max-new-tokens", "4"]
    assert main(args) == 0
    after = json.loads(path.read_text())
    added = set(after["scores"]["test"][0]) - set(before["scores"]["test"][0])
    assert "answer_empty_rate_at_2" in added and all(name.endswith("_at_2") for name in added)
    assert {k: v for k, v in after["scores"]["test"][0].items() if k not in added} == before["scores"]["test"][0]
    main_score = before["run_info"]["main_score"]
    assert after["per_query"][main_score] == before["per_query"][main_score] and after["train_info"] == before["train_info"]
    outcomes = {k: v for k, v in after["per_query"].items() if k != main_score}  # each answered query's 0/1, for paired tests
    assert set(outcomes) == {n for n in added if n.startswith("hallucinated_answer_rate_")}
    assert all(set(v.values()) <= {0.0, 1.0} and len(v) <= 4 for v in outcomes.values())
    assert all(sum(v.values()) / len(v) == after["scores"]["test"][0][name] for name, v in outcomes.items())
    generation = after["run_info"]["generation"]
    assert (generation["k"], generation["max_queries"], generation["n_answers"]) == (2, 4, 4)
    assert generation["generator_fingerprint"].startswith(str(llama))
    answers = path.with_suffix(".answers.jsonl")
    assert len(answers.read_text().splitlines()) == 4
    stamps = path.stat().st_mtime_ns, answers.stat().st_mtime_ns
    assert main(args) == 0  # same settings: nothing regenerated, nothing rewritten
    assert (path.stat().st_mtime_ns, answers.stat().st_mtime_ns) == stamps
    assert main([*args, "--overwrite"]) == 0  # rescored from the cached answers
    assert answers.stat().st_mtime_ns == stamps[1] and json.loads(path.read_text())["scores"] == after["scores"]


class CopyFirstContext:
    """Answers with the prompt's first context line: fully supported by its contexts, never abstaining."""

    fingerprint = "copy-first-context"

    def __call__(self, prompts):
        return [next(line for line in p.splitlines() if line.startswith("[1]")) for p in prompts]


def test_answer_scores_reach_the_leaderboard(tmp_path, tiny_task_dir, tiny_baselines, monkeypatch):
    from llm_fixtures import save_tiny_llama

    out, path = _stored_bm25_result(tmp_path, tiny_task_dir, tiny_baselines)
    monkeypatch.setattr("harness.answer_results._generator", lambda spec, device, max_new_tokens: CopyFirstContext())
    assert main(["answer", "--task-dir", str(tiny_task_dir), "--methods", "bm25", "--out", str(out), "--generator",
                 str(save_tiny_llama(tmp_path / "llama")), "--queries", "0", "--k", "2"]) == 0
    scores = json.loads(path.read_text())["scores"]["test"][0]
    assert scores["hallucinated_answer_rate_lexical_context_at_2"] == 0.0
    assert scores["answer_abstention_rate_at_2"] == 0.0 and scores["answer_empty_rate_at_2"] == 0.0
    assert json.loads(path.read_text())["run_info"]["generation"]["n_answers"] == 12  # every test query
    board = (out / "leaderboard.md").read_text()
    assert "hallucinated_answer_rate_lexical_context_at_2" in board and "answer_abstention_rate_at_2" in board


def test_answer_refuses_a_method_without_a_stored_result_and_writes_nothing(tmp_path, tiny_task_dir, tiny_baselines, capsys):
    from llm_fixtures import save_tiny_llama

    out, path = _stored_bm25_result(tmp_path, tiny_task_dir, tiny_baselines)
    before = path.read_text()
    llama = save_tiny_llama(tmp_path / "llama")
    assert main(["answer", "--task-dir", str(tiny_task_dir), "--methods", "bm25,frozen", "--out", str(out),
                 "--generator", str(llama)]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert error[-1].startswith("harness: error: no stored tiny result for frozen")
    assert path.read_text() == before and not path.with_suffix(".answers.jsonl").exists()


def test_answer_refuses_a_result_scored_on_another_corpus(tmp_path, tiny_task_dir, tiny_baselines, capsys):
    from llm_fixtures import save_tiny_llama

    out, path = _stored_bm25_result(tmp_path, tiny_task_dir, tiny_baselines)
    data = json.loads(path.read_text())
    data["dataset_revision"] = "0" * 12
    path.write_text(json.dumps(data))
    assert main(["answer", "--task-dir", str(tiny_task_dir), "--methods", "bm25", "--out", str(out),
                 "--generator", str(save_tiny_llama(tmp_path / "llama"))]) == 2
    assert "corpus revision 000000000000" in capsys.readouterr().err
