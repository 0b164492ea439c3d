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


def _empty_safe_mean(loss_fn, inputs: Tensor, target: Tensor) -> Tensor:
    if inputs.shape[0] == 0:
        return inputs.sum() * 0.0
    return loss_fn(inputs, target)


def existence_loss(logits: Tensor, labels: Tensor) -> Tensor:
    """Cross-entropy of per-query 2-way logits (B x Q x 2) against labels (B x Q) in {-1, 0, 1, 2}."""
    keep = (labels != -1) & (labels != 2)
    return _empty_safe_mean(F.cross_entropy, logits[keep], labels[keep].long())


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
    scores = prototype_scores(embeddings, book, positive, sample_index)
    selected = scores[labels == 1]
    target = torch.zeros(selected.shape[0], dtype=torch.long, device=selected.device)
    return _empty_safe_mean(F.cross_entropy, selected, target)


def interaction_logits(features_pathology: Tensor, features_anatomy: Tensor) -> Tensor:
    """B x A x P raw dot products between anatomy (B x A x d) and pathology (B x P x d) outputs."""
    return torch.matmul(features_anatomy, features_pathology.transpose(1, 2))


def interaction_loss(features_pathology: Tensor, features_anatomy: Tensor, matrix: Tensor) -> Tensor:
    """Binary cross-entropy of the interaction logits against ``matrix`` (B x A x P) over cells >= 0."""
    logits = interaction_logits(features_pathology, features_anatomy)
    keep = matrix >= 0
    return _empty_safe_mean(
        F.binary_cross_entropy_with_logits, logits[keep].float(), matrix[keep].float()
    )
