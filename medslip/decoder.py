"""Pre-norm DETR-style query decoder, with the parameter names of the published checkpoint."""

from __future__ import annotations

import copy

import torch.nn.functional as F
from torch import Tensor, nn


class QueryDecoderLayer(nn.Module):
    """One pre-norm decoder layer: self-attention, cross-attention to patches, feed-forward.

    Sequence-first tensors: ``tgt`` is Q x B x d, ``memory`` is L x B x d.
    """

    def __init__(self, d_model: int, num_heads: int, dim_feedforward: int, dropout: float) -> None:
        super().__init__()
        self.self_attn = nn.MultiheadAttention(d_model, num_heads, dropout=dropout)
        self.multihead_attn = nn.MultiheadAttention(d_model, num_heads, dropout=dropout)
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.norm3 = nn.LayerNorm(d_model)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.dropout3 = nn.Dropout(dropout)

    def forward(self, tgt: Tensor, memory: Tensor, need_weights: bool = True) -> tuple[Tensor, Tensor | None]:
        """Returns the updated queries (Q x B x d) and the head-averaged cross-attention (B x Q x L)."""
        x = self.norm1(tgt)
        x = self.self_attn(x, x, x, need_weights=False)[0]
        tgt = tgt + self.dropout1(x)
        x = self.norm2(tgt)
        x, weights = self.multihead_attn(x, memory, memory, need_weights=need_weights)
        tgt = tgt + self.dropout2(x)
        x = self.norm3(tgt)
        x = self.linear2(self.dropout(F.relu(self.linear1(x))))
        tgt = tgt + self.dropout3(x)
        return tgt, weights


class QueryDecoder(nn.Module):
    """A stack of :class:`QueryDecoderLayer` followed by a final LayerNorm ``norm``.

    ``norm`` may be shared with another decoder (MeDSLIP ties the pathology and anatomy norms).
    """

    def __init__(self, layer: QueryDecoderLayer, num_layers: int, norm: nn.LayerNorm) -> None:
        super().__init__()
        self.layers = nn.ModuleList([copy.deepcopy(layer) for _ in range(num_layers)])
        self.norm = norm

    def forward(self, tgt: Tensor, memory: Tensor, need_weights: bool = True) -> tuple[Tensor, list[Tensor]]:
        maps: list[Tensor] = []
        for layer in self.layers:
            tgt, weights = layer(tgt, memory, need_weights=need_weights)
            if weights is not None:
                maps.append(weights)
        return self.norm(tgt), maps
