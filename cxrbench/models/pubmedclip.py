"""The PubMedCLIP adapter: OpenAI CLIP ViT-B/32 fine-tuned on ROCO (Eslami et al.), the OpenAI layout of CheXzero.

The released ``best_model.pth`` wraps the state dict (``{"best_epoch", "state_dict", "optimizer_state_dict",
"best_loss"}``); the loader unwraps it (read with ``weights_only=True``). PubMedCLIP publishes no chest X-ray
zero-shot protocol, so its rules are CLIP's:

- ``clip-class-softmax`` (default): softmax over the task's classes of ``logit_scale * cos(image, "<label>")``;
- ``prompt-pair-softmax``: per class, softmax of ``logit_scale * [cos(image, positive set), cos(image, negative
  set)]`` with the task's prompt sets (deterministic and independent of the other classes).

Images are re-normalised to the OpenAI CLIP mean / std (``clip.load``'s preprocessing, which its training used).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import Tensor

from cxrbench.models.base import ClassSpec, ModelEntry
from cxrbench.models.chexzero import OpenAIClipZooAdapter, load_openai_zoo, verify_openai_zoo

CLASS_SOFTMAX = "clip-class-softmax"
PAIR = "prompt-pair-softmax"


def prompt_sets(spec: ClassSpec) -> tuple[tuple[str, ...], tuple[str, ...]]:
    words = spec.label.replace("_", " ")
    return (tuple(spec.positive_prompts) or (f"{words}.",), tuple(spec.negative_prompts) or (f"No {words.lower()}.",))


class PubmedclipAdapter(OpenAIClipZooAdapter):
    name = "pubmedclip"

    def _scale(self, index: int) -> float:
        return float(self.models[index].logit_scale.exp().clamp(max=100.0))

    def _set(self, index: int, prompts: tuple[str, ...]) -> Tensor:
        import torch.nn.functional as F

        emb = F.normalize(self._embed(index, prompts), dim=-1)
        return F.normalize(emb.mean(0), dim=-1)

    def scores(self, index: int, image_features: Tensor, classes: list[ClassSpec]) -> Tensor:
        import torch

        from baselines.clip_rules import class_softmax, prompt_pair_softmax

        if self.rule == CLASS_SOFTMAX:
            texts = [c.label.replace("_", " ") for c in classes]
            return class_softmax(image_features, self._embed(index, texts), self._scale(index))
        sets = [prompt_sets(c) for c in classes]
        pos = torch.stack([self._set(index, p) for p, _ in sets])
        neg = torch.stack([self._set(index, n) for _, n in sets])
        return prompt_pair_softmax(image_features, pos, neg, self._scale(index))

    def describe(self) -> dict[str, Any]:
        out = super().describe()
        out["zero_shot"] = {CLASS_SOFTMAX: "softmax over the task's classes of logit_scale * cos(img, '<label>')",
                            PAIR: "per class softmax(logit_scale * [cos(img, mean positive prompts), cos(img, mean "
                                  "negative prompts)])"}[self.rule]
        return out


def load(checkpoint: Path | None = None, image_size: int | None = None, zero_shot_rule: str | None = None,
         **_: Any) -> PubmedclipAdapter:
    return load_openai_zoo(PubmedclipAdapter, "pubmedclip", checkpoint, image_size, zero_shot_rule)


def verify_checkpoint(name: str, path: Path) -> str:
    return verify_openai_zoo(name, path)


ENTRY = ModelEntry("pubmedclip", "PubMedCLIP (zoo): OpenAI CLIP ViT-B/32 fine-tuned on ROCO; CLIP class softmax or "
                   "prompt pairs; zs, ft", frozenset({"zs", "ft"}), load)

__all__ = ["ENTRY", "PubmedclipAdapter", "load", "verify_checkpoint"]
