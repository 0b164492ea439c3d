"""Supervision derived from the anatomy x observation matrix: existence labels and ProtoCL indices."""

from __future__ import annotations

import torch
from torch import Tensor


def existence_labels(matrix: Tensor, dim: int) -> Tensor:
    """1 where the reduced line holds a 1, else 0 where it holds a 0, else -1.

    ``dim`` is the axis reduced: for ``matrix`` (..., A, P) use ``dim=-2`` for pathology labels
    (..., P) and ``dim=-1`` for anatomy labels (..., A).
    """
    present = (matrix == 1).any(dim)
    absent = (matrix == 0).any(dim)
    labels = torch.full(present.shape, -1, dtype=torch.long, device=matrix.device)
    labels = labels.masked_fill(absent, 0)
    return labels.masked_fill(present, 1)


def sample_candidates(
    positive: Tensor, num_negatives: int, generator: torch.Generator | None = None
) -> Tensor:
    """ProtoCL index lists for every query, vectorized.

    Args:
        positive: (..., Q, N) bool; row q lists which of the N candidates are positive for query q.
        num_negatives: K, the number of negatives drawn for a present query (7 in the paper).
        generator: torch random generator (on the CPU) for reproducible draws.

    Returns:
        (..., Q, K + 1) long. For a query with a positive: slot 0 is -1 (the prototype marker) and
        slots 1..K are K distinct indices among its non-positive candidates, drawn uniformly
        without replacement. For a query without a positive: K + 1 such draws. When a query has
        fewer non-positive candidates than needed, the draws wrap around the available ones
        (with repetition); when it has none, index 0 is used.
    """
    positive = positive.bool()
    keys = torch.rand(positive.shape, generator=generator, device="cpu").to(positive.device)
    keys = keys.masked_fill(positive, 2.0)  # positives sort last
    order = keys.argsort(dim=-1)
    need = num_negatives + 1
    available = (~positive).sum(-1, keepdim=True)  # (..., Q, 1)
    has_positive = positive.any(-1, keepdim=True)
    slots = torch.arange(need, device=positive.device)
    # Present queries use slots 0..K-1 of the draw for their K negatives (shifted right by one).
    draw_slot = (slots - has_positive.long()).clamp(min=0)
    draw_slot = torch.where(available > 0, draw_slot % available.clamp(min=1), torch.zeros_like(draw_slot))
    index = order.gather(-1, draw_slot.expand(*positive.shape[:-1], need))
    marker = has_positive & (slots == 0)
    return index.masked_fill(marker, -1)


def protocl_indices(
    matrix: Tensor, num_negatives: int = 7, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor]:
    """(sample_index_pathology (..., P, K+1), sample_index_anatomy (..., A, K+1)) from ``matrix`` (..., A, P)."""
    positive = matrix == 1
    pathology = sample_candidates(positive.transpose(-1, -2), num_negatives, generator)
    anatomy = sample_candidates(positive, num_negatives, generator)
    return pathology, anatomy


def supervision_from_matrix(
    matrix: Tensor, num_negatives: int = 7, generator: torch.Generator | None = None
) -> dict[str, Tensor]:
    """All per-image supervision (labels and ProtoCL indices) from the matrix (..., A, P)."""
    matrix = torch.as_tensor(matrix)
    index_p, index_a = protocl_indices(matrix, num_negatives, generator)
    return {
        "matrix": matrix.long(),
        "labels_pathology": existence_labels(matrix, dim=-2),
        "labels_anatomy": existence_labels(matrix, dim=-1),
        "sample_index_pathology": index_p,
        "sample_index_anatomy": index_a,
    }
