"""Embed one training batch in a few forward passes over rows of similar length.

The trainer pads a text column to its longest text, so a random batch of 32 (query, document) pairs
truncated at 128 tokens is 22-53% padding on the packaged tasks (benchmarks/length_buckets.py), and a HEAL batch, which mixes short queries with
documents, pads every query to the longest document. Padding is masked out of attention and
pooling, so embedding the rows sorted by length in `buckets` passes, each cut to its own longest
row, gives the same embeddings, loss and gradients (up to float rounding: the kernels see other
shapes) for less compute, and the batch and its negatives stay exactly as they were. Unlike
`length_batches` (which regroups rows across batches), this never changes what a batch holds. In
training, dropout draws its masks for the smaller passes in another order, so a bucketed run is
another draw of the same experiment, not a rerun of a stored one. Measured in
`benchmarks/length_buckets.py`.
"""

from __future__ import annotations

import torch
from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
from torch import Tensor


def embed_in_length_buckets(model, features: dict, buckets: int) -> Tensor:
    """`model(features)["sentence_embedding"]`, computed in `buckets` passes of rows sorted by length."""
    mask = features["attention_mask"]
    rows, width = mask.shape
    if buckets <= 1 or rows < 2 * buckets:
        return model(features)["sentence_embedding"]
    lengths = mask.sum(dim=1)
    inner = getattr(model, "module", model)  # the trainer may hand the loss a DDP wrapper
    left_padded = getattr(getattr(inner, "tokenizer", None), "padding_side", "right") == "left"
    order = torch.argsort(lengths, descending=True, stable=True)
    parts = []
    for chunk in order.chunk(buckets):
        longest = int(lengths[chunk].max())
        columns = slice(width - longest, width) if left_padded else slice(0, longest)
        sub = {}
        for key, value in features.items():
            if torch.is_tensor(value) and value.dim() >= 1 and value.shape[0] == rows:
                value = value[chunk]
                if value.dim() == 2 and value.shape[1] == width:
                    value = value[:, columns]
            sub[key] = value
        parts.append(model(sub)["sentence_embedding"])
    return torch.cat(parts)[torch.argsort(order)]


class LengthBucketedMNRL(MultipleNegativesRankingLoss):
    """The library's MNRL with each column embedded in `length_buckets` passes of similar-length rows."""

    def __init__(self, model, scale: float, length_buckets: int):
        super().__init__(model, scale=scale)
        self.length_buckets = length_buckets

    def forward(self, sentence_features, labels: Tensor) -> Tensor:
        embeddings = [embed_in_length_buckets(self.model, features, self.length_buckets) for features in sentence_features]
        return self.compute_loss_from_embeddings(embeddings, labels)
