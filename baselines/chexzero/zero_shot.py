"""CheXzero's preprocessing and zero-shot rules, as in its ``zero_shot.py`` (rajpurkarlab/CheXzero@5c341db).

Preprocessing (``CXRTestDataset`` + ``zero_shot.make``): the h5 image (0-255 scale, 1 channel) repeated to 3
channels, ``Normalize(mean=101.48761, std=83.43944)`` on the 0-255 scale, then ``Resize(224, bicubic)`` of the
tensor (shorter side; no crop).

Rules (per label c, templates ``"{}"`` and ``"no {}"``; text features normalised, averaged over the template list,
renormalised; image features normalised; raw cosines, no logit_scale):

- ``chexzero-pair-softmax`` (``run_softmax_eval``): p = exp(s+) / (exp(s+) + exp(s-)), independent per label;
- ``chexzero-zscore-sigmoid`` (``run_single_prediction(softmax_eval=False)``): per image, sigmoid of the z-score
  (numpy std, ddof 0) of s+ over the evaluated labels.

An ensemble averages the probabilities (not the cosines) over the checkpoints (``ensemble_models``).
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

MEAN_255 = 101.48761
STD_255 = 83.43944
PAIR_TEMPLATE = ("{}", "no {}")
PAIR_SOFTMAX = "chexzero-pair-softmax"
ZSCORE_SIGMOID = "chexzero-zscore-sigmoid"
RULES = (PAIR_SOFTMAX, ZSCORE_SIGMOID)


def preprocess_h5(images: Tensor, size: int = 224, antialias: bool = True) -> Tensor:
    """h5 images (B x H x W, 0-255) -> model input (B x 3 x size x size), as the published dataset + transform."""
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms import functional as TF

    x = images.float().unsqueeze(1).repeat(1, 3, 1, 1)
    x = (x - MEAN_255) / STD_255
    return TF.resize(x, [size], interpolation=InterpolationMode.BICUBIC, antialias=antialias)


def from_unit(images: Tensor) -> Tensor:
    """Images on the 0-1 scale (B x 3 x S x S) -> CheXzero's normalisation (0-255 scale, its mean / std)."""
    return (images * 255.0 - MEAN_255) / STD_255


def prompts(labels: Sequence[str], template: tuple[str, str] = PAIR_TEMPLATE) -> tuple[list[str], list[str]]:
    return [template[0].format(c) for c in labels], [template[1].format(c) for c in labels]


def tokenize(texts: Sequence[str], context_length: int = 77) -> Tensor:
    """OpenAI BPE ids (sot 49406, eot 49407, zero padding), as ``clip.tokenize`` (open_clip's copy)."""
    import open_clip

    return open_clip.tokenize(list(texts), context_length=context_length)


@torch.no_grad()
def class_weights(model: nn.Module, tokens_per_template: Sequence[Tensor]) -> Tensor:
    """``zeroshot_classifier``: D x C weights; ``tokens_per_template[t]`` is C x L, one row per class.

    Each class is encoded on its own (as the published loop does), normalised, averaged over templates and
    renormalised.
    """
    device = next(model.parameters()).device
    columns = []
    for c in range(tokens_per_template[0].shape[0]):
        emb = torch.cat([model.encode_text(t[c:c + 1].to(device)) for t in tokens_per_template]).float()
        emb = F.normalize(emb, dim=-1).mean(0)
        columns.append(emb / emb.norm())
    return torch.stack(columns, dim=1)


def cosines(image_features: Tensor, weights: Tensor) -> Tensor:
    """``predict(softmax_eval=True)``: normalised image features @ class weights (B x C)."""
    img = image_features.float()
    return (img / img.norm(dim=-1, keepdim=True)) @ weights.to(img.device)


def pair_softmax(cos_pos: Tensor, cos_neg: Tensor) -> Tensor:
    """``run_softmax_eval``: exp(pos) / (exp(pos) + exp(neg))."""
    return torch.stack([cos_pos, cos_neg], dim=-1).softmax(-1)[..., 0]


def zscore_sigmoid(cos_pos: Tensor) -> Tensor:
    """Per image: sigmoid((s - mean(s)) / std(s)) over the labels, std with ddof 0."""
    z = (cos_pos - cos_pos.mean(-1, keepdim=True)) / cos_pos.std(-1, unbiased=False, keepdim=True)
    return torch.sigmoid(z)


def ensemble(probabilities: Sequence[Tensor]) -> Tensor:
    """``ensemble_models``: the mean of the per-checkpoint probabilities."""
    return torch.stack(list(probabilities)).mean(0)


def score(rule: str, cos_pos: Tensor, cos_neg: Tensor | None = None) -> Tensor:
    if rule == PAIR_SOFTMAX:
        return pair_softmax(cos_pos, cos_neg)
    if rule == ZSCORE_SIGMOID:
        return zscore_sigmoid(cos_pos)
    raise ValueError(f"unknown CheXzero rule {rule!r} (known: {', '.join(RULES)})")


__all__ = ["MEAN_255", "PAIR_SOFTMAX", "PAIR_TEMPLATE", "RULES", "STD_255", "ZSCORE_SIGMOID", "class_weights",
           "cosines", "ensemble", "from_unit", "pair_softmax", "preprocess_h5", "prompts", "score", "tokenize",
           "zscore_sigmoid"]
