"""HEAL: the Hierarchical Embedding Alignment Loss (Bhattarai et al., arXiv 2412.04661).

Level-wise supervised contrastive loss (SupCon, Khosla et al. 2020) over one batch, summed with
depth weights:

    L_HEAL = (1/B) * sum_l lambda_l * sum_{i with positives at l} L_{i,l}
    L_{i,l} = -(1/|P_l(i)|) * sum_{p in P_l(i)} log( exp(z_i.z_p/tau) / sum_{a != i} exp(z_i.z_a/tau) )

`paths` is a (B, L) integer matrix, level 0 the coarsest, -1 where an item's path stops. The
callers append an instance column (the document's index) as the finest level, so a query and its
document are mutual positives there. Choices the paper leaves open, and the knobs for them:

* positives (`positives`): "prefix" (default) = same labels on levels 0..l, as in Zhang et al.'s
  HMCE; "label" = same label on level l only (equal to prefix when labels are globally unique).
  An anchor without positives at a level is skipped there but still counts in B.
* weights (`lambda_schedule`, see `level_weights`): "finer" (default) = 2^((l+1)/D), finest level
  2 (not HMCE's weights: those are "hmce"); "hmce" = 2^(1/d) with d = 1 at the finest level, 2 at
  the next, ... (Zhang et al.'s HMCE, which has no instance level); "uniform" = 1; "coarser" =
  decay^l, the coarse levels heavier. `role_weights` instead gives the instance level one fixed
  weight and spreads a fixed total over the cluster levels by the schedule, so the balance between
  the two roles does not depend on how many label levels a hierarchy has.
* fuzzy labels (`memberships`): a level with soft memberships (rows of HNMFk's column-normalised
  H, zero where undefined) weights each pair by <m_i, m_j> instead of 0/1, among items that
  share the parent prefix ("prefix") or among all items ("label"); one-hot rows give the hard loss.
* no projection head, no HMCE max-constraint, no tau/base_tau factor (it only rescales the loss).
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from harness.methods.length_buckets import embed_in_length_buckets

SCHEDULES = ("finer", "uniform", "coarser", "hmce")
POSITIVES = ("prefix", "label")


def level_weights(schedule: str, n_levels: int, decay: float = 0.5) -> list[float]:
    """lambda_l for levels 0 (coarsest) .. n_levels - 1 (finest)."""
    if schedule == "finer":
        return [2.0 ** ((level + 1) / n_levels) for level in range(n_levels)]
    if schedule == "uniform":
        return [1.0] * n_levels
    if schedule == "coarser":
        return [decay**level for level in range(n_levels)]
    if schedule == "hmce":
        return [2.0 ** (1 / (n_levels - level)) for level in range(n_levels)]
    raise ValueError(f"lambda schedule must be one of {', '.join(SCHEDULES)}, got {schedule!r}")


def role_weights(schedule: str, n_cluster_levels: int, cluster_weight: float, instance_weight: float,
                 decay: float = 0.5) -> list[float]:
    """lambda per cluster level (coarsest first) and, last, for the instance level: the cluster levels
    share `cluster_weight` in the schedule's proportions, whatever their number."""
    shares = level_weights(schedule, n_cluster_levels, decay) if n_cluster_levels else []
    return [cluster_weight * share / sum(shares) for share in shares] + [instance_weight]


def heal_loss(
    embeddings: Tensor,
    paths: Tensor,
    lambdas: Sequence[float],
    tau: float = 0.1,
    positives: str = "prefix",
    memberships: Sequence[Tensor | None] | None = None,
) -> list[Tensor]:
    """The weighted per-level terms lambda_l * (1/B) * sum_i L_{i,l}; their sum is L_HEAL."""
    if positives not in POSITIVES:
        raise ValueError(f"positives must be one of {', '.join(POSITIVES)}, got {positives!r}")
    batch, n_levels = paths.shape
    with torch.autocast(device_type=embeddings.device.type, enabled=False):  # softmax at small tau needs fp32
        z = F.normalize(embeddings if embeddings.dtype == torch.float64 else embeddings.float(), dim=1)
        eye = torch.eye(batch, dtype=torch.bool, device=z.device)
        logits = (z @ z.T / tau).masked_fill(eye, float("-inf"))
        log_prob = (logits - torch.logsumexp(logits, dim=1, keepdim=True)).masked_fill(eye, 0.0)
        ancestors_agree = torch.ones_like(eye)
        terms = []
        for level in range(n_levels):
            labels = paths[:, level]
            defined = (labels >= 0)[:, None] & (labels >= 0)[None, :]
            same = labels[:, None] == labels[None, :]
            gate = (ancestors_agree if positives == "prefix" else torch.ones_like(eye)) & defined & ~eye
            soft = memberships[level] if memberships is not None else None
            weight = gate * (soft.to(z.dtype) @ soft.to(z.dtype).T) if soft is not None else (gate & same).to(z.dtype)
            ancestors_agree = ancestors_agree & same & defined
            mass = weight.sum(dim=1)
            anchors = mass > 0
            per_anchor = -(weight * log_prob).sum(dim=1)[anchors] / mass[anchors]
            terms.append(lambdas[level] * per_anchor.sum() / batch)
    return terms


class HEALLoss(nn.Module):
    """sentence-transformers loss: the label column holds row ids into per-row paths and memberships.

    Returns a dict of per-level terms, which the trainer sums and logs one by one.
    """

    def __init__(
        self,
        model,
        paths: Tensor,
        level_names: Sequence[str],
        lambdas: Sequence[float],
        tau: float = 0.1,
        positives: str = "prefix",
        memberships: Sequence[Tensor | None] | None = None,
        length_buckets: int = 4,
    ):
        super().__init__()
        if len(level_names) != paths.shape[1] or len(lambdas) != paths.shape[1]:
            raise ValueError("one level name and one lambda per column of paths")
        self.model = model
        self.paths = paths.long()
        self.level_names, self.lambdas = list(level_names), list(lambdas)
        self.tau, self.positives = tau, positives
        self.memberships = list(memberships) if memberships is not None else None
        self.length_buckets = length_buckets

    def embed(self, features: dict) -> Tensor:
        """Embed a batch in `length_buckets` forward passes of rows of similar length: a HEAL batch
        mixes short queries with documents, and one pass would pad every query to the longest document."""
        return embed_in_length_buckets(self.model, features, self.length_buckets)

    def forward(self, sentence_features, labels: Tensor) -> dict[str, Tensor]:
        embeddings = self.embed(sentence_features[0])
        rows = labels.to("cpu").long()
        paths = self.paths[rows].to(embeddings.device)
        soft = None
        if self.memberships is not None:
            soft = [m[rows].to(embeddings.device) if m is not None else None for m in self.memberships]
        terms = heal_loss(embeddings, paths, self.lambdas, self.tau, self.positives, soft)
        return dict(zip(self.level_names, terms))

    def get_config_dict(self) -> dict:
        return {"tau": self.tau, "positives": self.positives, "lambdas": self.lambdas, "levels": self.level_names}
