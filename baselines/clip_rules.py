"""Zero-shot rules shared by the CLIP-style published models (embeddings in, probabilities out).

- ``class_softmax`` (CLIP, BiomedCLIP as published): per image, softmax over the evaluated classes of
  ``logit_scale * cos(image, class text)``; a class's score depends on the other classes of the task;
- ``prompt_pair_softmax`` (deterministic, per image and per class): softmax over
  ``logit_scale * [cos(image, positive set), cos(image, negative set)]``, each set the renormalised mean of its
  normalised prompt embeddings.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

CLASS_SOFTMAX = "class-softmax"
PROMPT_PAIR_SOFTMAX = "prompt-pair-softmax"


def prompt_set_embedding(embed_texts: Callable[[list[str]], Tensor], prompts: Sequence[str]) -> Tensor:
    """The normalised mean of the normalised embeddings of ``prompts`` (D)."""
    emb = F.normalize(embed_texts(list(prompts)).float(), dim=-1)
    return F.normalize(emb.mean(0), dim=-1)


def class_softmax(image_features: Tensor, class_embeddings: Tensor, logit_scale: float | Tensor) -> Tensor:
    """B x D images, C x D classes -> B x C: softmax over classes of scale * cosine."""
    img = F.normalize(image_features.float(), dim=-1)
    txt = F.normalize(class_embeddings.float(), dim=-1).to(img.device)
    return (float(logit_scale) * img @ txt.T).softmax(-1)


def prompt_pair_softmax(image_features: Tensor, positive: Tensor, negative: Tensor, logit_scale: float | Tensor) -> Tensor:
    """B x D images, C x D positive / negative set embeddings -> B x C probabilities of the positive set."""
    img = F.normalize(image_features.float(), dim=-1)
    pos, neg = F.normalize(positive.float(), dim=-1).to(img.device), F.normalize(negative.float(), dim=-1).to(img.device)
    logits = torch.stack([img @ pos.T, img @ neg.T], dim=-1) * float(logit_scale)
    return logits.softmax(-1)[..., 0]


__all__ = ["CLASS_SOFTMAX", "PROMPT_PAIR_SOFTMAX", "class_softmax", "prompt_pair_softmax", "prompt_set_embedding"]
