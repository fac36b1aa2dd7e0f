"""LBR: the bottleneck layout, mask and labels, the two stages, and a run through the runner on a tiny Llama."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch

from harness.baselines import Baseline
from harness.methods.lbr_model import (
    BOTTLENECK,
    IGNORE,
    PAD,
    TARGET,
    TEXT,
    BottleneckLM,
    additive_mask,
    allowed_attention,
    generation_labels,
    lay_out,
)
from harness.methods.lbr import MIN_CONTINUATION_PART, LBRConfig, stage1_example
from harness.runner import RunSettings, run_one
from harness.task import load_task_folder
from llm_fixtures import save_tiny_llama

torch.set_num_threads(1)
PAD_ID, EOS_ID, K = 0, 2, 3


@pytest.fixture(scope="module")
def tiny_llama_dir(tmp_path_factory) -> Path:
    return save_tiny_llama(tmp_path_factory.mktemp("tiny-llama"))


def tiny_bottleneck_lm(folder: Path, attention: str = "sdpa") -> BottleneckLM:
    from transformers import LlamaForCausalLM

    torch.manual_seed(0)
    model = LlamaForCausalLM.from_pretrained(str(folder), attn_implementation=attention).eval()
    return BottleneckLM(model, K, PAD_ID)


def target_logits(lm: BottleneckLM, text: list[int], target: list[int], allowed_fn) -> torch.Tensor:
    layout = lay_out([text], K, PAD_ID, [target])
    embeddings = lm.input_embeddings(layout)
    mask = additive_mask(allowed_fn(layout.segments), embeddings.dtype)
    with torch.no_grad():
        logits = lm.lm(inputs_embeds=embeddings, attention_mask=mask).logits
    return logits[layout.segments == TARGET]


def bottleneck_cut_from_text(segments: torch.Tensor, bottleneck: bool) -> torch.Tensor:
    """The real mask, minus bottleneck -> text attention: the bottleneck states no longer depend on the text."""
    cut = (segments == BOTTLENECK)[:, :, None] & (segments == TEXT)[:, None, :]
    return allowed_attention(segments, bottleneck) & ~cut


def test_layout_puts_k_bottleneck_slots_between_text_and_target_and_pads_right():
    layout = lay_out([[5, 6], [7]], 2, PAD_ID, [[8, EOS_ID], [9, 10, 11, EOS_ID]])

    assert layout.input_ids.tolist() == [[5, 6, 0, 0, 8, 2, 0], [7, 0, 0, 9, 10, 11, 2]]
    assert layout.segments.tolist() == [
        [TEXT, TEXT, BOTTLENECK, BOTTLENECK, TARGET, TARGET, PAD],
        [TEXT, BOTTLENECK, BOTTLENECK, TARGET, TARGET, TARGET, TARGET],
    ]


def test_labels_ask_text_for_the_next_text_token_and_the_last_bottleneck_slot_for_the_first_target_token():
    layout = lay_out([[5, 6, 7]], 2, PAD_ID, [[8, EOS_ID]])

    ntp, gen = generation_labels(layout)

    assert ntp.tolist() == [[6, 7, IGNORE, IGNORE, IGNORE, IGNORE, IGNORE]]
    assert gen.tolist() == [[IGNORE, IGNORE, IGNORE, IGNORE, 8, EOS_ID, IGNORE]]


def test_bottleneck_mask_hides_the_text_from_the_target_and_nothing_else():
    segments = lay_out([[5, 6]], 1, PAD_ID, [[8]]).segments  # text text B target

    with_mask = allowed_attention(segments, bottleneck=True)[0].int().tolist()
    without_mask = allowed_attention(segments, bottleneck=False)[0].int().tolist()

    assert with_mask == [[1, 0, 0, 0], [1, 1, 0, 0], [1, 1, 1, 0], [0, 0, 1, 1]]
    assert without_mask == [[1, 0, 0, 0], [1, 1, 0, 0], [1, 1, 1, 0], [1, 1, 1, 1]]


def test_padding_keys_are_hidden_from_real_tokens_and_a_padding_row_keeps_a_key_to_avoid_nan():
    segments = lay_out([[5, 6], [7]], 1, PAD_ID).segments  # second row: text B pad

    allowed = allowed_attention(segments)[1].int().tolist()

    assert allowed == [[1, 0, 0], [1, 1, 0], [1, 1, 1]]


def test_with_bottleneck_states_held_fixed_changing_the_text_leaves_target_logits_unchanged(tiny_llama_dir):
    lm = tiny_bottleneck_lm(tiny_llama_dir)
    target = [20, 21, 22, EOS_ID]

    first = target_logits(lm, [5, 6, 7, 8], target, lambda s: bottleneck_cut_from_text(s, bottleneck=True))
    second = target_logits(lm, [9, 10, 11, 12], target, lambda s: bottleneck_cut_from_text(s, bottleneck=True))

    assert torch.allclose(first, second, atol=1e-6)


def test_with_the_mask_off_changing_the_text_changes_target_logits_even_with_bottleneck_states_fixed(tiny_llama_dir):
    lm = tiny_bottleneck_lm(tiny_llama_dir)
    target = [20, 21, 22, EOS_ID]

    first = target_logits(lm, [5, 6, 7, 8], target, lambda s: bottleneck_cut_from_text(s, bottleneck=False))
    second = target_logits(lm, [9, 10, 11, 12], target, lambda s: bottleneck_cut_from_text(s, bottleneck=False))

    assert (first - second).abs().max() > 1e-3


def test_with_the_real_mask_the_text_reaches_the_target_through_the_bottleneck(tiny_llama_dir):
    lm = tiny_bottleneck_lm(tiny_llama_dir)
    target = [20, 21, 22, EOS_ID]

    first = target_logits(lm, [5, 6, 7, 8], target, allowed_attention)
    second = target_logits(lm, [9, 10, 11, 12], target, allowed_attention)

    assert (first - second).abs().max() > 1e-3


def test_llama_eager_attention_gives_target_rows_exactly_zero_weight_on_text_columns(tiny_llama_dir):
    lm = tiny_bottleneck_lm(tiny_llama_dir, attention="eager")
    layout = lay_out([[5, 6, 7], [8]], K, PAD_ID, [[20, EOS_ID], [21, 22, EOS_ID]])
    embeddings = lm.input_embeddings(layout)
    with torch.no_grad():
        out = lm.lm(inputs_embeds=embeddings, attention_mask=additive_mask(allowed_attention(layout.segments), embeddings.dtype),
                    output_attentions=True)
    target_to_text = (layout.segments == TARGET)[:, None, :, None] & (layout.segments == TEXT)[:, None, None, :]

    for weights in out.attentions:
        assert weights.masked_select(target_to_text.expand_as(weights)).abs().max().item() == 0.0
        assert torch.allclose(weights.sum(-1), torch.ones_like(weights.sum(-1)))


def test_sdpa_and_eager_kernels_agree_on_the_4d_float_bottleneck_mask(tiny_llama_dir):
    layout = lay_out([[5, 6, 7], [8]], K, PAD_ID, [[20, EOS_ID], [21, 22, EOS_ID]])
    states = []
    for attention in ("sdpa", "eager"):
        with torch.no_grad():
            states.append(tiny_bottleneck_lm(tiny_llama_dir, attention).hidden_states(layout))
    real = layout.segments != PAD

    assert torch.allclose(states[0][real], states[1][real], atol=1e-5)


def test_a_text_gets_the_same_bottleneck_embedding_alone_and_padded_in_a_batch(tiny_llama_dir):
    lm = tiny_bottleneck_lm(tiny_llama_dir)

    with torch.no_grad():
        alone = lm.embed([[5, 6]])
        batched = lm.embed([[5, 6], [7, 8, 9, 10, 11]])

    assert torch.allclose(alone[0], batched[0], atol=1e-5)
    assert torch.allclose(batched.norm(dim=1), torch.ones(2))


def test_query_vectors_read_from_the_generation_pass_equal_plain_bottleneck_embeddings(tiny_llama_dir):
    lm = tiny_bottleneck_lm(tiny_llama_dir)
    queries = [[5, 6], [7, 8, 9]]
    layout = lay_out(queries, K, PAD_ID, [[20, 21, EOS_ID], [22, EOS_ID]])

    with torch.no_grad():
        from_generation = lm.pool(lm.hidden_states(layout), layout.segments)
        plain = lm.embed(queries)

    assert torch.allclose(from_generation, plain, atol=1e-5)


def test_stage1_reconstructs_when_asked_and_short_documents_always():
    config = LBRConfig(reconstruction_share=1.0, max_text_length=30, max_target_length=5)
    long_doc, short_doc = list(range(100, 150)), list(range(100, 110))

    assert stage1_example(long_doc, random.Random(0), config, EOS_ID) == (long_doc[:30], long_doc[:5] + [EOS_ID])
    continuation_config = LBRConfig(reconstruction_share=0.0)
    assert stage1_example(short_doc, random.Random(0), continuation_config, EOS_ID) == (short_doc, short_doc + [EOS_ID])


def test_stage1_continuation_cuts_with_enough_tokens_on_both_sides():
    config = LBRConfig(reconstruction_share=0.0, max_text_length=30, max_target_length=8)
    doc = list(range(100, 150))
    rng = random.Random(0)

    for _ in range(50):
        text, target = stage1_example(doc, rng, config, EOS_ID)
        cut = len(text)
        assert text == doc[:cut] and MIN_CONTINUATION_PART <= cut <= 30
        assert target == doc[cut : cut + 8] + [EOS_ID]


def tiny_lbr_config(model: Path, **changes) -> LBRConfig:
    settings = dict(model=str(model), k=K, stage1_steps=4, max_steps=4, stage1_batch_size=4, train_batch_size=6,
                    stage1_lr=1e-3, learning_rate=1e-3, max_text_length=24, max_target_length=12, max_query_length=16,
                    max_document_length=24, refine_corpus_batch_size=2, lora_rank=4, precision="fp32")
    return LBRConfig(**{**settings, **changes})


@pytest.mark.parametrize("baseline", ["lbr", "lbr-nomask"])
def test_lbr_runs_end_to_end_through_the_runner(baseline, tiny_llama_dir, tiny_task_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_RUNS_DIR", str(tmp_path / "runs"))
    config = tiny_lbr_config(tiny_llama_dir, bottleneck_mask=baseline == "lbr")
    task = load_task_folder(tiny_task_dir)

    written = run_one(task, Baseline(baseline, "lbr", config), 0, RunSettings(results_dir=tmp_path / "results", show_progress=False))

    result = json.loads(written.read_text())
    assert 0.0 <= result["scores"]["test"][0]["ndcg_at_10"] <= 1.0
    info = result["train_info"]
    assert info["train_pairs"] == 30 and info["corpus_texts"] == 18
    assert info["stage1_steps"] == 4 and [set(entry) for entry in info["stage1_loss_log"]] == [{"step", "loss", "gen", "ntp"}] * 4
    assert info["steps"] == 4 and [set(entry) for entry in info["loss_log"]] == [{"step", "loss", "contrastive", "refine"}] * 4
    assert info["selected_step"] == 4  # eval_steps = 0: no selection
    adapter = Path(info["adapter"])
    assert (adapter / "adapter_config.json").exists()
    assert torch.load(adapter / "bottleneck.pt").shape == (K, 32)


def test_lbr_without_generative_refinement_trains_stage2_on_the_contrastive_loss_alone(tiny_llama_dir, tiny_task_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_RUNS_DIR", str(tmp_path / "runs"))
    config = tiny_lbr_config(tiny_llama_dir, lambda_gen=0.0, alpha=0.0, stage1_steps=1)
    task = load_task_folder(tiny_task_dir)

    written = run_one(task, Baseline("lbr", "lbr", config), 0, RunSettings(results_dir=tmp_path / "results", show_progress=False))

    info = json.loads(written.read_text())["train_info"]
    assert all(entry["loss"] == entry["contrastive"] and "refine" not in entry for entry in info["loss_log"])
    assert "ntp" not in info["stage1_loss_log"][0]


def test_lbr_selects_its_stage2_step_on_dev_starting_from_the_stage1_model(tiny_llama_dir, tiny_task_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_RUNS_DIR", str(tmp_path / "runs"))
    config = tiny_lbr_config(tiny_llama_dir, eval_steps=2)
    task = load_task_folder(tiny_task_dir)

    written = run_one(task, Baseline("lbr", "lbr", config), 0, RunSettings(results_dir=tmp_path / "results", show_progress=False))

    info = json.loads(written.read_text())["train_info"]
    assert [point["step"] for point in info["dev_curve"]] == [0, 2, 4]
    assert info["selected_step"] == max(info["dev_curve"], key=lambda point: point["ndcg_at_10"])["step"]


def test_lbr_with_no_stage1_steps_trains_stage2_from_the_base_model(tiny_llama_dir, tiny_task_dir, tmp_path, monkeypatch):
    """`lbr-nostage1` / `lbr-nogen`: the bottleneck readout and stage 2 alone."""
    monkeypatch.setenv("HARNESS_RUNS_DIR", str(tmp_path / "runs"))
    config = tiny_lbr_config(tiny_llama_dir, stage1_steps=0, lambda_gen=0.0)
    task = load_task_folder(tiny_task_dir)

    written = run_one(task, Baseline("lbr", "lbr", config), 0, RunSettings(results_dir=tmp_path / "results", show_progress=False))

    info = json.loads(written.read_text())["train_info"]
    assert info["stage1_steps"] == 0 and not info.get("stage1_loss_log")
    assert info["steps"] == 4 and all(entry["loss"] == entry["contrastive"] for entry in info["loss_log"])
