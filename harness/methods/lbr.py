"""`lbr`: Learn Before Represent (arXiv 2601.11124), as reconstructed in the project's research notes (lbr.md).

Only the paper's abstract was readable, so the mechanism below follows the closest published methods
(gist-token masks, AutoRegEmbed, LLM2Comp, LLaRA, GritLM); every choice the paper would settle is a knob.

Stage 1, information-bottleneck-constrained generative learning, on the task's own corpus texts (no
queries, no qrels): `text <B_1..B_k> target EOS` with the bottleneck mask of `harness.methods.lbr_model`;
loss L_gen + alpha * L_ntp. The target is, per document, a reconstruction of the text (share
`reconstruction_share`) or its continuation after a cut drawn uniformly with at least
`MIN_CONTINUATION_PART` tokens on each side (LLM2Comp's rule); documents too short to cut are
reconstructed. With `bottleneck_mask = false` (the `lbr-nomask` ablation) targets also see the text, so
reconstruction can be solved by copying and the bottleneck carries no pressure.

Stage 2, generative-refined contrastive learning: a text's embedding is the normalised mean of the
bottleneck tokens' final states (`pooling = "last"`: the last one). InfoNCE over duplicate-free batches
of train pairs plus `lambda_gen` times a generative term: generating the positive document from the
query's bottleneck (read from the same forward pass that embeds the query) and, when
`refine_corpus_batch_size > 0`, the stage-1 loss on a fresh corpus batch against forgetting.
`lambda_gen = 0` gives reading (iii) of the research notes (plain InfoNCE on the stage-1 bottleneck).

Both stages train the same LoRA adapter and the k bottleneck vectors; the base weights stay frozen.
Stage 2 is the contrastive stage every causal-LM method shares (`harness.methods.causal_training`):
it uses the shared vocabulary (`max_steps`, `train_batch_size`, `learning_rate`, hashed under their
old names `stage2_steps`, `stage2_batch_size`, `stage2_lr`), the dev-set selection (`eval_steps`; step 0
is the model after stage 1) and the unprefixed `train_info` keys; stage 1 keeps its `stage1_*` knobs
and reports under `stage1_*` keys.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from typing import Sequence

import torch

from harness.config_fields import stored_as
from harness.errors import HarnessError
from harness.llm import RowEncoder, TextFormat, load_causal_lm
from harness.methods.base import FitContext, Fitted, require_train_split
from harness.methods.causal_training import (
    LLMEncodingFields,
    LLMTrainFields,
    Schedule,
    check_pooling,
    dev_selection,
    save_adapter,
    train,
    wrap_with_lora,
)
from harness.methods.in_batch import DuplicateFreeBatches, false_negatives, info_nce, positives_by_query
from harness.methods.lbr_model import BottleneckLM, lay_out
from harness.methods.llm_embedders import row_encoder
from harness.task import Task

MIN_CONTINUATION_PART = 10


@dataclass(frozen=True)
class LBRConfig(LLMTrainFields, LLMEncodingFields):  # encoding, LoRA, optimiser and selection fields shared with llm-cl
    reference = "llm-cl"  # a class attribute, not a field: lbr rows are compared with llm-cl
    model: str = "smollm2"  # packaged causal-LM alias or a local Hugging Face folder
    k: int = 8  # bottleneck tokens (LLM2Comp and LLaRA use 8, AutoRegEmbed 5)
    pooling: str = "mean"  # mean over the k bottleneck states | last bottleneck state
    bottleneck_mask: bool = True  # false: targets may attend to the text (mask-off ablation)
    # stage 1: generative learning on the corpus
    stage1_steps: int = 200
    stage1_batch_size: int = 8
    stage1_lr: float = 1e-4
    alpha: float = 1.0  # weight of next-token loss on the text (0: pure compression pretext)
    reconstruction_share: float = 0.5  # share of reconstruction targets; the rest are continuations
    max_text_length: int = 256  # text tokens before the bottleneck, stage 1
    max_target_length: int = 128  # target tokens after it (stage 1, and stage 2's generated document)
    # stage 2: contrastive learning on the bottleneck embedding
    max_steps: int = stored_as("stage2_steps", 200)
    train_batch_size: int = stored_as("stage2_batch_size", 16)  # pairs per step; the other pairs' documents are the negatives
    learning_rate: float = stored_as("stage2_lr", 1e-4)
    tau: float = 0.05  # InfoNCE temperature
    lambda_gen: float = 0.1  # weight of the generative refinement term (0 disables it)
    refine_corpus_batch_size: int = 4  # corpus texts per stage-2 step in that term (0: only query -> document)

    def check(self, task: Task) -> None:
        check_pooling(self.pooling, "lbr")
        require_train_split(task, "lbr's stage 2")
        if self.k < 1 or not 0.0 <= self.reconstruction_share <= 1.0:
            raise HarnessError(f"lbr needs k >= 1 and 0 <= reconstruction_share <= 1, got k={self.k}, share={self.reconstruction_share}")

    def expected_cost(self) -> int:
        return self.stage1_steps * self.stage1_batch_size + self.max_steps * self.train_batch_size


def stage1_example(tokens: Sequence[int], rng: random.Random, config: LBRConfig, eos_id: int) -> tuple[list[int], list[int]]:
    """(text, target + EOS) from one corpus document: a reconstruction or a continuation."""
    shortest_cut = 2 * MIN_CONTINUATION_PART
    if len(tokens) < shortest_cut or rng.random() < config.reconstruction_share:
        text = list(tokens[: config.max_text_length])
        return text, text[: config.max_target_length] + [eos_id]
    cut = rng.randint(MIN_CONTINUATION_PART, min(len(tokens) - MIN_CONTINUATION_PART, config.max_text_length))
    return list(tokens[:cut]), list(tokens[cut : cut + config.max_target_length]) + [eos_id]


class CorpusBatches:
    """Stage-1 examples from the task's corpus, tokenised once."""

    def __init__(self, task: Task, tokenizer, config: LBRConfig, rng: random.Random):
        texts = [doc.full_text for doc in task.corpus.values()]
        limit = config.max_text_length + config.max_target_length
        self.tokens = tokenizer(texts, truncation=True, max_length=limit)["input_ids"]
        self.config, self.rng, self.eos_id = config, rng, tokenizer.eos_token_id

    def sample(self, size: int) -> tuple[list[list[int]], list[list[int]]]:
        examples = [stage1_example(t, self.rng, self.config, self.eos_id)
                    for t in self.rng.sample(self.tokens, min(size, len(self.tokens)))]
        return [text for text, _ in examples], [target for _, target in examples]


class LBRTrainer:
    """The two stages' per-step losses over one BottleneckLM."""

    def __init__(self, model: BottleneckLM, corpus: CorpusBatches, form: TextFormat, tokenizer, config: LBRConfig):
        self.model, self.corpus, self.form, self.tokenizer, self.config = model, corpus, form, tokenizer, config

    def stage1_losses(self, size: int) -> dict[str, torch.Tensor]:
        texts, targets = self.corpus.sample(size)
        layout = lay_out(texts, self.config.k, self.tokenizer.pad_token_id, targets)
        hidden = self.model.hidden_states(layout, self.config.bottleneck_mask)
        gen = self.model.generation_loss(hidden, layout)
        if not self.config.alpha:
            return {"loss": gen, "gen": gen}
        ntp = self.model.text_loss(hidden, layout)
        return {"loss": gen + self.config.alpha * ntp, "gen": gen, "ntp": ntp}

    def stage2_losses(self, pairs, batches, positives) -> dict[str, torch.Tensor]:
        config = self.config
        batch = next(batches)
        queries, docs = [pairs[i][0] for i in batch], [pairs[i][1] for i in batch]
        query_rows = self.form.rows(self.tokenizer, queries, "query")
        doc_rows = self.form.rows(self.tokenizer, docs, "document")
        targets = [row[: config.max_target_length] + [self.tokenizer.eos_token_id] for row in doc_rows]
        layout = lay_out(query_rows, config.k, self.tokenizer.pad_token_id, targets if config.lambda_gen else None)
        # bottleneck states never see the target (causal), so this pass embeds the query and scores generation at once
        hidden = self.model.hidden_states(layout, config.bottleneck_mask)
        query_vectors = self.model.pool(hidden, layout.segments, config.pooling)
        doc_vectors = self.model.embed(doc_rows, config.pooling)
        contrastive = info_nce(query_vectors, doc_vectors, config.tau, false_negatives(queries, docs, positives))
        if not config.lambda_gen:
            return {"loss": contrastive, "contrastive": contrastive}
        refine = self.model.generation_loss(hidden, layout)
        if config.refine_corpus_batch_size:
            refine = refine + self.stage1_losses(config.refine_corpus_batch_size)["loss"]
        return {"loss": contrastive + config.lambda_gen * refine, "contrastive": contrastive, "refine": refine}


def bottleneck_encoder(model: BottleneckLM, form: TextFormat, tokenizer, config: LBRConfig, context: FitContext) -> RowEncoder:
    return row_encoder(lambda rows: model.embed(rows, config.pooling), form, tokenizer, config, context)


class LBR:
    name = "lbr"
    Config = LBRConfig

    def fit(self, task: Task, config: LBRConfig, context: FitContext) -> Fitted:
        config.check(task)
        pairs = task.train_pairs("train")
        rng = random.Random(context.seed)
        base, tokenizer = load_causal_lm(config.model, context.device)
        lora = wrap_with_lora(base, config).train()
        model = BottleneckLM(lora, config.k, tokenizer.pad_token_id)
        form = TextFormat(config.max_query_length, config.max_document_length, config.query_prefix, config.document_prefix)
        trainer = LBRTrainer(model, CorpusBatches(task, tokenizer, config, rng), form, tokenizer, config)
        stage1 = train(
            model,
            Schedule(config.stage1_steps, config.stage1_lr, config.warmup_ratio, config.weight_decay),
            lambda step: trainer.stage1_losses(config.stage1_batch_size),
            config.precision, context.device, "lbr stage 1", context.show_progress,
        )
        batches = iter(DuplicateFreeBatches(pairs, config.train_batch_size, rng))
        positives = positives_by_query(pairs)
        quiet = bottleneck_encoder(model, form, tokenizer, config, replace(context, show_progress=False))
        stage2 = train(
            model,
            Schedule(config.max_steps, config.learning_rate, config.warmup_ratio, config.weight_decay),
            lambda step: trainer.stage2_losses(pairs, batches, positives),
            config.precision, context.device, "lbr stage 2", context.show_progress,
            dev_selection(model, quiet, task, config),
        )
        adapter = save_adapter(lora, context.run_dir, {"bottleneck": model.bottleneck})
        # plain weights encode faster than LoRA layers; the trained bottleneck vectors carry over
        merged = BottleneckLM(lora.merge_and_unload().eval(), config.k, tokenizer.pad_token_id, model.bottleneck)
        info = {"trained": True, "train_pairs": len(pairs), "corpus_texts": len(task.corpus)}
        return Fitted(bottleneck_encoder(merged, form, tokenizer, config, context),
                      {**info, **{f"stage1_{k}": v for k, v in stage1.items()}, **stage2, "adapter": str(adapter)})
