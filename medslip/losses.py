"""The five MeDSLIP loss terms, vectorized.

All functions are pure: they never modify their inputs. Shapes use B (batch), P (75 observations),
A (51 anatomies), T (text width), d (decoder width).

Conventions shared with the published implementation:
- labels -1 ("not mentioned") and 2 are ignored by the existence loss;
- ProtoCL is computed for the (b, q) with label 1 only; slot 0 of each candidate list is the
  prototype (the mean of the book rows of the positive cells), the other slots are book rows at the
  sampled indices (an index of -1 stands for a zero vector);
- the interaction loss uses the *pre-dropout* decoder outputs and every matrix cell >= 0.

Where a batch has no entry for a term (for example no positive observation at all) the published
code returns NaN; we return an exact zero that keeps the graph connected, so training does not stop.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def masked_mean(values: Tensor, keep: Tensor) -> Tensor:
    """Mean of ``values`` over the cells where ``keep`` is true; an exact, graph-connected 0 when none is.

    Written with ``where`` and a sum instead of boolean indexing, so it has no data-dependent
    shape: no device-to-host synchronisation on CUDA and no graph break under ``torch.compile``.
    Cells outside ``keep`` never contribute, not even a NaN.
    """
    kept = torch.where(keep, values, torch.zeros_like(values))
    count = keep.sum().clamp(min=1).to(values.dtype)
    return kept.sum() / count


def _zero_outside(values: Tensor, keep: Tensor) -> Tensor:
    """``values`` with the cells outside ``keep`` set to 0, so they get an exact zero gradient."""
    return torch.where(keep, values, torch.zeros((), dtype=values.dtype, device=values.device))


def existence_loss(logits: Tensor, labels: Tensor) -> Tensor:
    """Cross-entropy of per-query 2-way logits (B x Q x 2) against labels (B x Q) in {-1, 0, 1, 2}."""
    keep = (labels != -1) & (labels != 2)
    target = torch.where(keep, labels, torch.zeros_like(labels)).long()
    logits = _zero_outside(logits.float(), keep.unsqueeze(-1))
    per_cell = F.cross_entropy(logits.flatten(0, -2), target.flatten(), reduction="none")
    return masked_mean(per_cell, keep.flatten())


def prototype_scores(
    embeddings: Tensor, book: Tensor, positive: Tensor, sample_index: Tensor
) -> Tensor:
    """Dot-product scores of each query against its ProtoCL candidates.

    Args:
        embeddings: B x Q x T, the ``cl_fc`` projection of the decoder outputs.
        book: N x T, rows of the *other* stream's book (anatomy book for pathology queries).
        positive: B x Q x N bool, cells where the query is present at that row.
        sample_index: B x Q x K long, candidate rows; -1 marks the prototype slot (zero vector).

    Returns:
        B x Q x K scores; slot 0 holds the prototype score wherever the query has a positive cell.
    """
    sims = torch.matmul(embeddings, book.t())  # B x Q x N (never B x Q x N x T)
    positive = positive.to(sims.dtype)
    count = positive.sum(-1)
    proto = (sims * positive).sum(-1) / count.clamp(min=1.0)
    gathered = sims.gather(-1, sample_index.clamp(min=0))
    gathered = gathered.masked_fill(sample_index == -1, 0.0)
    first = torch.where(count > 0, proto, gathered[..., 0])
    return torch.cat([first.unsqueeze(-1), gathered[..., 1:]], dim=-1)


def prototype_contrastive_loss(
    embeddings: Tensor, book: Tensor, positive: Tensor, sample_index: Tensor, labels: Tensor
) -> Tensor:
    """ProtoCL: cross-entropy with target slot 0 over the (b, q) whose label is 1."""
    selected = labels == 1
    scores = _zero_outside(prototype_scores(embeddings, book, positive, sample_index).float(), selected.unsqueeze(-1))
    per_query = torch.logsumexp(scores, dim=-1) - scores[..., 0]  # cross-entropy with target 0
    return masked_mean(per_query, selected)


def interaction_logits(features_pathology: Tensor, features_anatomy: Tensor) -> Tensor:
    """B x A x P raw dot products between anatomy (B x A x d) and pathology (B x P x d) outputs."""
    return torch.matmul(features_anatomy, features_pathology.transpose(1, 2))


def interaction_loss(features_pathology: Tensor, features_anatomy: Tensor, matrix: Tensor) -> Tensor:
    """Binary cross-entropy of the interaction logits against ``matrix`` (B x A x P) over cells >= 0."""
    keep = matrix >= 0
    logits = _zero_outside(interaction_logits(features_pathology, features_anatomy).float(), keep)
    target = keep & (matrix == 1)
    per_cell = F.binary_cross_entropy_with_logits(logits, target.to(logits.dtype), reduction="none")
    return masked_mean(per_cell, keep)
