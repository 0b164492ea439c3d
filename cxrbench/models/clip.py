"""The ``clip`` model adapter: our CLIP baseline checkpoints (``cxrbench train clip``).

- zero-shot classification: prompt sets, positive vs negative (:mod:`baselines.clip.prompts`);
- grounding: cosine between each location of the image tower's last feature map (projected by the
  tower's own head) and the class's positive text embedding;
- encoder: the timm ResNet trunk loaded strictly into the torchvision ResNet of the same name
  (equal parameter names), cut after layer3, for fine-tuning and segmentation. A ViT image tower
  (``vision: vit``) offers zero-shot classification and grounding only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from baselines.clip.prompts import PromptClassifier
from cxrbench.models.base import (ClassSpec, Encoder, ModelEntry, ResNetTrunk, UnsupportedSetting, file_sha256,
                                  resnet_channels)


def torchvision_resnet_from_timm(trunk: nn.Module, arch: str) -> nn.Module:
    """A torchvision ``arch`` holding the weights of a timm ResNet trunk (only ``fc`` stays random)."""
    import torchvision

    resnet = getattr(torchvision.models, arch)(weights=None)
    result = resnet.load_state_dict(trunk.state_dict(), strict=False)
    missing = set(result.missing_keys) - {"fc.weight", "fc.bias"}
    if missing or result.unexpected_keys:
        raise RuntimeError(f"timm {arch} trunk does not match torchvision's names: missing {sorted(missing)}, "
                           f"unexpected {sorted(result.unexpected_keys)}")
    return resnet


class ClipAdapter:
    """Our open_clip-built CLIP baseline behind the harness's model contract."""

    name = "clip"
    settings = frozenset({"zs", "ground", "ft", "seg"})

    def __init__(self, model, tokenizer, checkpoint: str | Path | None = None,
                 meta: dict[str, Any] | None = None, image_size: int | None = None, name: str | None = None) -> None:
        if name is not None:
            self.name = name  # the registry name records carry (``clip-vit`` for the ViT demo)
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.checkpoint = Path(checkpoint) if checkpoint else None
        self.meta = meta or {}
        self.image_size = int(image_size or model.config.image_size)  # a ResNet takes any size
        if model.config.is_vit:
            self.settings = frozenset({"zs", "ground"})
            if self.image_size != model.config.image_size:
                raise ValueError(f"this CLIP checkpoint has a ViT image tower trained at {model.config.image_size} px "
                                 f"(fixed position embeddings); it cannot be evaluated at {self.image_size} px")
        self.prompts = PromptClassifier(self._embed_texts)
        self._sha: str | None = None

    @classmethod
    def from_checkpoint(cls, path: str | Path, image_size: int | None = None, name: str | None = None,
                        vit: bool | None = None) -> "ClipAdapter":
        """A checkpoint folder; ``image_size`` overrides the trained size for evaluation; ``vit`` (when
        given) requires a ViT (True) or ResNet (False) image tower."""
        from baselines.clip.checkpoint import load_clip_checkpoint

        model, tokenizer, meta = load_clip_checkpoint(path)
        if vit is not None and model.config.is_vit != vit:
            has = "a ViT" if model.config.is_vit else f"a {model.config.vision}"
            use = "clip-vit" if model.config.is_vit else "clip"
            raise ValueError(f"{path}: this CLIP checkpoint has {has} image tower; evaluate it as --model {use}")
        return cls(model, tokenizer, path, meta, image_size, name)

    def to(self, device: torch.device) -> "ClipAdapter":
        self.model.to(device)
        return self

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def _embed_texts(self, texts: list[str]) -> Tensor:
        from baselines.clip.model import tokenize

        ids = tokenize(self.tokenizer, texts, self.model.config.context_length).to(self.device)
        return self.model.encode_text(ids)

    @torch.no_grad()
    def zero_shot(self, images: Tensor, classes: list[ClassSpec]) -> Tensor:
        """Normalised images (B x 3 x S x S) -> B x C probabilities."""
        emb = self.model.encode_image(images.to(self.device))
        return self.prompts.probabilities(emb, [c.prompt_sets() for c in classes], self.model.logit_scale()).cpu()

    @torch.no_grad()
    def ground(self, images: Tensor, classes: list[ClassSpec]) -> Tensor:
        """Images -> B x C x h x w patch-text similarity maps (h = w = S / 32, or S / patch for a ViT)."""
        patches = self.model.patch_embeddings(images.to(self.device))
        return self.prompts.similarity_maps(patches, [c.prompt_sets() for c in classes]).cpu()

    def encoder(self) -> Encoder:
        arch = self.model.config.vision
        if self.model.config.is_vit:
            raise UnsupportedSetting(self.name, "ft/seg", "This CLIP checkpoint has a ViT image tower: fine-tuning and "
                                     "segmentation need a ResNet tower (model.vision: resnet18, resnet50, ...).")
        resnet = torchvision_resnet_from_timm(self.model.clip.visual.trunk, arch)
        layers = nn.Sequential(*list(resnet.children())[:-3])
        return Encoder(ResNetTrunk(layers), resnet_channels(arch), arch,
                       source=f"clip image tower (timm {arch} -> torchvision, conv1..layer3)")

    def _tower(self) -> str:
        c = self.model.config
        if c.is_vit:
            return (f"ViT width {c.vit_width}, {c.vit_layers} layers, {c.vit_heads} heads, "
                    f"patch {c.vit_patch_size}, pool {c.vit_pool}")
        return f"timm {c.vision}"

    def describe(self) -> dict[str, Any]:
        if self._sha is None and self.checkpoint is not None:
            self._sha = file_sha256(self.checkpoint)
        return {"name": self.name, "source": "cxrbench-clip-checkpoint",
                "architecture": f"open_clip CustomTextCLIP ({self._tower()} + HF text)",
                "checkpoint": str(self.checkpoint) if self.checkpoint else None, "checkpoint_sha256": self._sha,
                "config": self.model.config.to_dict(), "image_size": self.image_size,
                "text_encoder": self.meta.get("text_encoder"),
                "zero_shot": "prompt sets: softmax(scale * [cos(img, mean pos), cos(img, mean neg)])",
                "grounding": "cosine(projected last feature map, positive class embedding)"}

    @torch.no_grad()
    def streams(self, images: Tensor, classes: list[ClassSpec]) -> dict[str, dict[str, Any]]:
        """Per-stream outputs for ``cxrbench diagnose``: one stream, ``image`` (role "both"): features = the
        normalised image embedding (B x D); ``class_maps`` = :meth:`ground`'s patch-text similarity maps."""
        return {"image": {"role": "both", "features": self.model.encode_image(images.to(self.device)).float().cpu(),
                          "features_description": "L2-normalised image embedding",
                          "class_maps": self.ground(images, classes),
                          "maps_description": "cosine(projected last feature map, positive class embedding)"}}


def load(checkpoint: Path | None = None, image_size: int | None = None, progress: bool = True,
         **_: Any) -> ClipAdapter:
    """``checkpoint`` (a ResNet-tower CLIP folder), or the demo checkpoint (trained first when absent)."""
    from baselines.clip.checkpoint import CONFIG_FILE
    from cxrbench.train import demo_or_train

    return ClipAdapter.from_checkpoint(checkpoint or demo_or_train("clip", CONFIG_FILE, progress=progress),
                                       image_size=image_size)


def load_vit(checkpoint: Path | None = None, image_size: int | None = None, progress: bool = True,
             **_: Any) -> ClipAdapter:
    """``checkpoint`` (a ViT-tower CLIP folder), or the ViT demo checkpoint (trained first when absent)."""
    from baselines.clip.checkpoint import CONFIG_FILE
    from cxrbench.train import demo_or_train

    path = checkpoint or demo_or_train("clip", CONFIG_FILE, config="demo-vit", run_name="clip-vit",
                                       progress=progress)
    return ClipAdapter.from_checkpoint(path, image_size=image_size, name="clip-vit", vit=True)


ENTRY = ModelEntry("clip", "CLIP/ConVIRT-style baseline trained by `cxrbench train clip` (open_clip: timm ResNet "
                   "+ HF text tower); prompt-set zero-shot, patch-similarity grounding",
                   frozenset({"zs", "ground", "ft", "seg"}), load)
VIT_ENTRY = ModelEntry("clip-vit", "the CLIP baseline with a ViT image tower (demo: `cxrbench train clip --config "
                       "demo-vit`); prompt-set zero-shot, patch-token grounding", frozenset({"zs", "ground"}), load_vit)

__all__ = ["ENTRY", "VIT_ENTRY", "ClipAdapter", "load", "load_vit", "torchvision_resnet_from_timm"]
