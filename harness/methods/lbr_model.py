"""The information bottleneck of LBR: k learned tokens after a text, and a mask that makes targets read only them.

One sequence is `text <B_1>..<B_k> target EOS`:

* text tokens keep the LM's ordinary causal attention (and its next-token loss, L_ntp);
* bottleneck tokens see the text and the earlier bottleneck tokens;
* target tokens see the bottleneck tokens and the earlier target tokens, never the text (gist-style
  mask), so all the text can contribute to the target must pass through the k bottleneck states.
  `bottleneck=False` drops this cut for the mask-off ablation.

The bottleneck tokens are k trainable input vectors, not new vocabulary entries: the tokenizer and the
output head stay unchanged, so nothing can ever generate a bottleneck token. A text's embedding is the
normalised mean (or last) of the bottleneck tokens' final hidden states, read from the plain causal pass.
The mask goes to the model as an additive float (batch, 1, T, T) `attention_mask`; transformers 5.x
passes a 4-D mask through unchanged, and a float mask is right for both the SDPA and eager kernels
(eager would add a boolean mask as 0/1 instead of masking).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

TEXT, BOTTLENECK, TARGET, PAD = 0, 1, 2, 3
IGNORE = -100


@dataclass(frozen=True)
class Layout:
    """A right-padded batch of `text <B>*k target` sequences; bottleneck slots hold the pad id."""

    input_ids: torch.Tensor  # (batch, T)
    segments: torch.Tensor  # (batch, T) TEXT | BOTTLENECK | TARGET | PAD


def lay_out(texts: Sequence[Sequence[int]], k: int, pad_id: int, targets: Sequence[Sequence[int]] | None = None) -> Layout:
    rows = []
    for i, text in enumerate(texts):
        target = list(targets[i]) if targets is not None else []
        rows.append((list(text) + [pad_id] * k + target, [TEXT] * len(text) + [BOTTLENECK] * k + [TARGET] * len(target)))
    width = max(len(ids) for ids, _ in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    segments = torch.full((len(rows), width), PAD, dtype=torch.long)
    for i, (ids, segs) in enumerate(rows):
        input_ids[i, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        segments[i, : len(segs)] = torch.tensor(segs, dtype=torch.long)
    return Layout(input_ids, segments)


def allowed_attention(segments: torch.Tensor, bottleneck: bool = True) -> torch.Tensor:
    """(batch, T, T) bool, True where query position i may attend to key position j."""
    width = segments.shape[1]
    causal = torch.tril(torch.ones(width, width, dtype=torch.bool, device=segments.device))
    allowed = causal[None] & (segments != PAD)[:, None, :]
    if bottleneck:
        allowed &= ~((segments == TARGET)[:, :, None] & (segments == TEXT)[:, None, :])
    padding_rows = (segments == PAD)[:, :, None] & torch.eye(width, dtype=torch.bool, device=segments.device)[None]
    return allowed | padding_rows  # padding rows keep their own key: a row with no key gives NaN in softmax


def additive_mask(allowed: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """(batch, 1, T, T): 0 where attention is allowed, the dtype's lowest value where it is not."""
    mask = torch.zeros(allowed.shape, dtype=dtype, device=allowed.device)
    return mask.masked_fill(~allowed, torch.finfo(dtype).min)[:, None]


def generation_labels(layout: Layout) -> tuple[torch.Tensor, torch.Tensor]:
    """Next-token labels at each position: (text -> next text token, last bottleneck or target -> next target token)."""
    ids, segs = layout.input_ids, layout.segments
    next_ids = torch.cat([ids[:, 1:], torch.full_like(ids[:, :1], IGNORE)], dim=1)
    next_segs = torch.cat([segs[:, 1:], torch.full_like(segs[:, :1], PAD)], dim=1)
    ntp = torch.where((segs == TEXT) & (next_segs == TEXT), next_ids, IGNORE)
    gen = torch.where((next_segs == TARGET) & ((segs == BOTTLENECK) | (segs == TARGET)), next_ids, IGNORE)
    return ntp, gen


class BottleneckLM(nn.Module):
    """A causal LM (plain or LoRA-wrapped) plus k trainable bottleneck input vectors."""

    def __init__(self, causal_lm, k: int, pad_id: int, bottleneck: nn.Parameter | None = None):
        super().__init__()
        self.lm, self.k, self.pad_id = causal_lm, k, pad_id
        if bottleneck is None:
            bottleneck = nn.Parameter(self._initial_vectors(k))
        self.bottleneck = bottleneck

    def _initial_vectors(self, k: int) -> torch.Tensor:
        """The mean input embedding plus small noise, so the k slots start alike but not identical."""
        table = self.lm.get_input_embeddings().weight.detach().float()
        noise = torch.randn(k, table.shape[1], device=table.device) * table.std() * 0.1
        return table.mean(0, keepdim=True) + noise

    def input_embeddings(self, layout: Layout) -> torch.Tensor:
        """Token embeddings with the k bottleneck vectors written into each row's bottleneck slots."""
        ids, slots = layout.input_ids.to(self.bottleneck.device), layout.segments.to(self.bottleneck.device) == BOTTLENECK
        embeddings = self.lm.get_input_embeddings()(ids)
        vectors = self.bottleneck.to(embeddings.dtype).repeat(len(ids), 1)  # k per row, in row order
        return embeddings.masked_scatter(slots[..., None], vectors)

    def hidden_states(self, layout: Layout, bottleneck_mask: bool = True) -> torch.Tensor:
        embeddings = self.input_embeddings(layout)
        mask = additive_mask(allowed_attention(layout.segments.to(embeddings.device), bottleneck_mask), embeddings.dtype)
        positions = torch.arange(embeddings.shape[1], device=embeddings.device)[None].expand(len(embeddings), -1)
        return self.lm.get_decoder()(inputs_embeds=embeddings, attention_mask=mask, position_ids=positions).last_hidden_state

    def pool(self, hidden: torch.Tensor, segments: torch.Tensor, pooling: str = "mean") -> torch.Tensor:
        """L2-normalised mean (or last) of the bottleneck tokens' final states, one row per sequence."""
        states = hidden[segments.to(hidden.device) == BOTTLENECK].view(len(hidden), self.k, -1).float()
        pooled = states.mean(1) if pooling == "mean" else states[:, -1]
        return F.normalize(pooled, dim=-1)

    def embed(self, texts: Sequence[Sequence[int]], pooling: str = "mean") -> torch.Tensor:
        layout = lay_out(texts, self.k, self.pad_id)
        return self.pool(self.hidden_states(layout), layout.segments, pooling)

    def generation_loss(self, hidden: torch.Tensor, layout: Layout) -> torch.Tensor:
        """L_gen: mean cross-entropy of the target tokens (and their EOS), predicted from the bottleneck onwards."""
        return self._cross_entropy(hidden, generation_labels(layout)[1])

    def text_loss(self, hidden: torch.Tensor, layout: Layout) -> torch.Tensor:
        """L_ntp: mean next-token cross-entropy over the text."""
        return self._cross_entropy(hidden, generation_labels(layout)[0])

    def _cross_entropy(self, hidden: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Logits only at labelled positions: a full (batch, T, vocab) tensor would dominate CPU memory."""
        labels = labels.to(hidden.device)
        where = labels != IGNORE
        if not where.any():
            return hidden.sum() * 0.0
        logits = self.lm.get_output_embeddings()(hidden[where])
        return F.cross_entropy(logits.float(), labels[where])
