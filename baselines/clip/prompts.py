"""Prompt-set zero-shot classification shared by the CLIP-style adapters.

For each class, the positive prompts (``ClassSpec.positive_prompts``) and the negative ones are
embedded and L2-normalised; each set's mean, normalised again, is the class's positive / negative
text embedding (a prompt ensemble). An image's probability for the class is the softmax over the two
scaled cosine similarities, taken at the positive one:

    p = softmax(scale * [cos(img, pos), cos(img, neg)])[0]

which is the CheXzero / MedCLIP-style positive-vs-negative protocol. A class is given as its prompt
sets: a pair (positive prompts, negative prompts) of strings.
"""

from __future__ import annotations

from typing import Callable, Sequence

#: One class as its prompt sets: (positive prompts, negative prompts).
PromptSets = tuple[Sequence[str], Sequence[str]]

import torch
import torch.nn.functional as F
from torch import Tensor


def ensemble(embed_texts: Callable[[list[str]], Tensor], prompts: Sequence[str]) -> Tensor:
    """The normalised mean of the normalised prompt embeddings (D)."""
    emb = F.normalize(embed_texts(list(prompts)).float(), dim=-1)
    return F.normalize(emb.mean(0), dim=-1)


class PromptClassifier:
    """Caches the class text embeddings of a model and scores images against them.

    Args:
        embed_texts: texts -> N x D text embeddings (any scale; normalised here).
    """

    def __init__(self, embed_texts: Callable[[list[str]], Tensor]) -> None:
        self.embed_texts = embed_texts
        self._cache: dict[tuple[tuple[str, ...], tuple[str, ...]], tuple[Tensor, Tensor]] = {}

    def class_embeddings(self, classes: Sequence[PromptSets]) -> tuple[Tensor, Tensor]:
        """(positive C x D, negative C x D) normalised class embeddings."""
        pos, neg = [], []
        for positive, negative in classes:
            key = (tuple(positive), tuple(negative))
            if key not in self._cache:
                with torch.no_grad():
                    self._cache[key] = (ensemble(self.embed_texts, key[0]), ensemble(self.embed_texts, key[1]))
            pos.append(self._cache[key][0])
            neg.append(self._cache[key][1])
        return torch.stack(pos), torch.stack(neg)

    def probabilities(self, image_embeddings: Tensor, classes: Sequence[PromptSets], scale: float | Tensor) -> Tensor:
        """Image embeddings (B x D) -> B x C probabilities (positive vs negative prompt set)."""
        pos, neg = self.class_embeddings(classes)
        img = F.normalize(image_embeddings.float(), dim=-1)
        pos, neg = pos.to(img.device), neg.to(img.device)
        logits = torch.stack([img @ pos.T, img @ neg.T], dim=-1) * float(scale)  # B x C x 2
        return logits.softmax(-1)[..., 0]

    def similarity_maps(self, patch_embeddings: Tensor, classes: Sequence[PromptSets]) -> Tensor:
        """Patch embeddings (B x h x w x D) -> B x C x h x w cosine with each class's positive embedding."""
        pos, _ = self.class_embeddings(classes)
        patches = F.normalize(patch_embeddings.float(), dim=-1)
        return torch.einsum("bhwd,cd->bchw", patches, pos.to(patches.device))


__all__ = ["PromptClassifier", "PromptSets", "ensemble"]
