"""GLoRIA's similarities, zero-shot rule, word-to-region maps and losses (``gloria_loss.py``, ``gloria_model.py``,
``gloria.py`` at 416466a), on tensors.

Shapes: image local embeddings ``img_l`` B x D x h x w, global ``img_g`` B x D; word embeddings ``txt_l`` N x D x T
(``[CLS]`` at position 0), sentence embeddings ``txt_g`` N x D.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

#: The published zero-shot local similarity hard-codes these (not the config's temp1 / temp2).
ZS_TEMP_ATTENTION = 4.0
ZS_TEMP_WORDS = 5.0

PUBLISHED_BATCH = "published-batch"
PER_IMAGE = "per-image"
RULES = (PER_IMAGE, PUBLISHED_BATCH)


def cosine_similarity(x1: Tensor, x2: Tensor, dim: int = 1, eps: float = 1e-8) -> Tensor:
    """``gloria_loss.cosine_similarity``: the product of the norms is clamped at ``eps``."""
    w12 = (x1 * x2).sum(dim)
    return w12 / (x1.norm(2, dim) * x2.norm(2, dim)).clamp(min=eps)


def attention_fn(query: Tensor, context: Tensor, temp1: float) -> tuple[Tensor, Tensor]:
    """Words ``query`` (B x D x n) attend to regions ``context`` (B x D x h x w): softmax over the words for each
    region, then (x temp1) softmax over the regions for each word. -> (weighted context B x D x n, maps
    B x n x h x w)."""
    batch, n = query.shape[0], query.shape[2]
    h, w = context.shape[2], context.shape[3]
    ctx = context.reshape(batch, -1, h * w)
    attn = torch.bmm(ctx.transpose(1, 2), query)  # B x R x n
    attn = attn.softmax(-1).transpose(1, 2)  # B x n x R
    attn = (attn * temp1).softmax(-1)
    return torch.bmm(ctx, attn.transpose(1, 2)), attn.reshape(batch, n, h, w)


def global_similarities(img_g: Tensor, txt_g: Tensor) -> Tensor:
    """Cosine similarity (sklearn's: rows normalised, a zero row stays zero), B x N."""
    def unit(x: Tensor) -> Tensor:
        norm = x.norm(dim=1, keepdim=True)
        return x / torch.where(norm == 0, torch.ones_like(norm), norm)

    return unit(img_g.float()) @ unit(txt_g.float()).T


def local_similarities(img_l: Tensor, txt_l: Tensor, cap_lens: Sequence[int] | Tensor,
                       return_maps: bool = False) -> tuple[Tensor, list[Tensor]]:
    """``get_local_similarities``: for text j, words 1 .. cap_lens[j] (``[CLS]`` skipped; positions past the words
    are ``[SEP]`` and zero vectors, as published), word-to-region attention at temperature 4, r_k = cos(word,
    attended context), score = log max_k exp(5 r_k). -> (B x N, the maps per text if asked)."""
    batch, length = img_l.shape[0], txt_l.shape[2]
    sims, maps = [], []
    for j in range(txt_l.shape[0]):
        cap = int(cap_lens[j])
        if cap > length - 1:
            raise ValueError(f"text {j}: cap_len {cap} > {length - 1}: the published zero-shot fails on texts this "
                             "long (its cap_lens counts characters; keep prompts under 97 characters)")
        word = txt_l[j, :, 1: cap + 1].unsqueeze(0).expand(batch, -1, -1).contiguous()
        weighted, attn = attention_fn(word, img_l, ZS_TEMP_ATTENTION)
        n = word.shape[2]
        row = cosine_similarity(word.transpose(1, 2).reshape(batch * n, -1),
                                weighted.transpose(1, 2).reshape(batch * n, -1)).reshape(batch, n)
        sims.append(torch.log(torch.exp(row * ZS_TEMP_WORDS).max(1, keepdim=True).values))
        if return_maps:
            maps.append(attn)
    return torch.cat(sims, 1), maps


def both_similarities(img_l: Tensor, img_g: Tensor, txt_l: Tensor, txt_g: Tensor, cap_lens) -> Tensor:
    """``get_similarities(..., "both")``: (local + global) / 2, B x N."""
    local, _ = local_similarities(img_l, txt_l, cap_lens)
    return (local + global_similarities(img_g, txt_g)) / 2


def class_scores(sim: Tensor, prompt_class: Sequence[int] | Tensor, num_classes: int) -> Tensor:
    """Per class, the max of ``sim`` (B x N) over the class's prompts -> B x C (the code takes the max; its
    comment says average)."""
    prompt_class = torch.as_tensor(prompt_class)
    cols = []
    for c in range(num_classes):
        sel = (prompt_class == c).nonzero().flatten()
        if not len(sel):
            raise ValueError(f"class {c} has no prompt")
        cols.append(sim[:, sel].max(1).values)
    return torch.stack(cols, 1)


def normalize_over_images(scores: Tensor) -> Tensor:
    """``utils.normalize`` as ``zero_shot_classification`` applies it: each class column standardised over the
    images of the call (population std); a single image is returned unchanged."""
    if scores.shape[0] <= 1:
        return scores
    mean = scores.mean(0, keepdim=True)
    std = scores.std(0, unbiased=False, keepdim=True)
    return (scores - mean) / std


def zero_shot(class_raw: Tensor, rule: str = PUBLISHED_BATCH) -> Tensor:
    """``published-batch``: the published function on this call's images (standardised over them); ``per-image``:
    the raw class scores (deterministic; per class an affine map of the published scores over any fixed image set,
    so per-class AUC is the published rule's over the whole evaluation set)."""
    if rule == PUBLISHED_BATCH:
        return normalize_over_images(class_raw)
    if rule == PER_IMAGE:
        return class_raw
    raise ValueError(f"GLoRIA zero-shot rule must be one of {RULES}, got {rule!r}")


def word_counts(sentences: Sequence[Sequence[str]]) -> list[int]:
    """``_calc_local_loss``'s cap_lens: aggregated words not starting with ``[``, plus one."""
    return [len([w for w in s if not w.startswith("[")]) + 1 for s in sentences]


def attn_maps(img_l: Tensor, txt_l: Tensor, counts: Sequence[int], temp1: float = 4.0) -> list[Tensor]:
    """``get_attn_maps``: for text i, positions 0 .. counts[i]-1 (``[CLS]`` and the words) over image i's regions,
    1 x counts[i] x h x w (each word's map sums to 1)."""
    out = []
    for i, n in enumerate(counts):
        word = txt_l[i, :, :n].unsqueeze(0).expand(img_l.shape[0], -1, -1).contiguous()
        _, attn = attention_fn(word, img_l, temp1)
        out.append(attn[i: i + 1])
    return out


def local_loss(img_l: Tensor, txt_l: Tensor, counts: Sequence[int], temp1: float = 4.0, temp2: float = 5.0,
               temp3: float = 10.0) -> tuple[Tensor, Tensor]:
    """``gloria_loss.local_loss`` (agg ``sum``) on a paired batch -> (loss0, loss1)."""
    batch = img_l.shape[0]
    sims = []
    for i, n in enumerate(counts):
        word = txt_l[i, :, :n].unsqueeze(0).expand(batch, -1, -1).contiguous()
        weighted, _ = attention_fn(word, img_l, temp1)
        row = cosine_similarity(word.transpose(1, 2).reshape(batch * n, -1),
                                weighted.transpose(1, 2).reshape(batch * n, -1)).reshape(batch, n)
        sims.append(torch.log(torch.exp(row * temp2).sum(1, keepdim=True)))
    sim = torch.cat(sims, 1) * temp3
    labels = torch.arange(batch, device=sim.device)
    return F.cross_entropy(sim, labels), F.cross_entropy(sim.T, labels)


def global_loss(img_g: Tensor, txt_g: Tensor, temp3: float = 10.0, eps: float = 1e-8) -> tuple[Tensor, Tensor]:
    """``gloria_loss.global_loss`` -> (loss0, loss1)."""
    norm = img_g.norm(2, dim=1, keepdim=True) @ txt_g.norm(2, dim=1, keepdim=True).T
    scores = (img_g @ txt_g.T) / norm.clamp(min=eps) * temp3
    labels = torch.arange(img_g.shape[0], device=img_g.device)
    return F.cross_entropy(scores, labels), F.cross_entropy(scores.T, labels)


__all__ = ["PER_IMAGE", "PUBLISHED_BATCH", "RULES", "attention_fn", "attn_maps", "both_similarities", "class_scores",
           "cosine_similarity", "global_loss", "global_similarities", "local_loss", "local_similarities",
           "normalize_over_images", "word_counts", "zero_shot"]
