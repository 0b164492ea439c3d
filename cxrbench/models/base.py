"""The model-adapter contract: what the harness needs from any model it evaluates.

Every adapter (one module per model family in :mod:`cxrbench.models`, listed in
:mod:`cxrbench.models.registry`) speaks this contract, and only this module defines it:

- :class:`ClassSpec`: one evaluated class (dataset label, vocabulary query or free-text description,
  prompt sets);
- :class:`ModelAdapter` (a protocol): ``zero_shot(images B x 3 x S x S, classes) -> B x C`` probabilities,
  ``ground(images, classes) -> B x C x h x w`` maps on the model's patch grid (higher = more likely
  there), ``encoder() -> Encoder`` for fine-tuning and segmentation, ``describe() -> dict`` (identity for
  the record: name, checkpoint and its sha256, config, which weights), ``image_size`` and ``settings``
  (a subset of ``{"zs", "ground", "ft", "seg"}``);
- :class:`Encoder`: the exported image backbone, feature maps at strides 2, 4, 8, 16 (and 32);
- :class:`UnsupportedSetting`: raised by an adapter asked for a setting its architecture cannot serve;
- :class:`ModelEntry`: a registry row (name, description, settings, loader);
- the download permission: :func:`downloads_allowed` / :data:`HOW_TO_ALLOW` (defined in
  :mod:`cxrbench.downloads`, re-exported here): a loader reaches the network only when it says yes.

Images reach an adapter already resized to ``image_size`` and normalised with ImageNet mean / std (3
channels); an adapter whose model was trained with other preprocessing converts them itself.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

import torch
from torch import Tensor, nn

from cxrbench.downloads import ALLOW_DOWNLOAD_ENV, HOW_TO_ALLOW, downloads_allowed


@dataclass(frozen=True)
class ClassSpec:
    """One evaluated class: the dataset label and how a model should ask for it.

    ``query`` names a MeDSLIP observation (query-based models); ``description`` is free text for a
    class outside the vocabulary (a new query is made from it by the model's own text encoder);
    ``positive_prompts`` / ``negative_prompts`` serve prompt-based (CLIP-style) models.
    """

    label: str
    query: str | None = None
    description: str | None = None
    positive_prompts: tuple[str, ...] = ()
    negative_prompts: tuple[str, ...] = ()

    def prompt_sets(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """(positive prompts, negative prompts) for prompt-based models, with defaults where the spec has
        none: ``"<label>."`` (plus the free-text description, when there is one) / ``"No <label>."``."""
        words = self.label.replace("_", " ")
        positive = tuple(self.positive_prompts) or (f"{words}.",)
        if not self.positive_prompts and self.description:
            positive = positive + (self.description,)
        negative = tuple(self.negative_prompts) or (f"No {words.lower()}.",)
        return positive, negative


@dataclass
class Encoder:
    """An image encoder for fine-tuning and segmentation.

    ``trunk(x)`` returns the list of feature maps at strides 2, 4, 8, 16 (and 32 when
    ``channels`` has five entries); ``channels`` gives their widths. ``arch`` names the torchvision
    ResNet the trunk comes from, so a random layer4 of the same architecture can be added.
    A trunk that is not a torchvision ResNet (open_clip's ModifiedResNet) gives ``layer4`` instead: a
    factory of a randomly initialised layer4 of its own architecture (``channels[-1]`` -> twice as many
    channels, stride 2), and ``arch`` then only names it.
    """

    trunk: nn.Module
    channels: tuple[int, ...]
    arch: str
    source: str
    layer4: Callable[[], nn.Module] | None = None


@dataclass(frozen=True)
class ModelEntry:
    """One row of the model registry (``cxrbench/models/registry.py``): what ``cxrbench models`` prints and
    how ``cxrbench run --model NAME`` gets an adapter."""

    name: str
    description: str
    settings: frozenset[str]  # subset of {"zs", "ground", "ft", "seg"}
    load: Callable[..., Any]  # (checkpoint: Path | None, **options) -> adapter; ignores unknown options


class ModelAdapter(Protocol):
    name: str
    image_size: int
    settings: frozenset[str]  # subset of {"zs", "ground", "ft", "seg"}

    def to(self, device: torch.device) -> "ModelAdapter": ...

    def zero_shot(self, images: Tensor, classes: list[ClassSpec]) -> Tensor:
        """Normalised images (B x 3 x S x S) -> probabilities (B x C)."""
        ...

    def ground(self, images: Tensor, classes: list[ClassSpec]) -> Tensor:
        """Images -> maps over the patch grid (B x C x h x w), higher = more likely there."""
        ...

    def encoder(self) -> Encoder: ...

    def describe(self) -> dict[str, Any]: ...


class ResNetTrunk(nn.Module):
    """A torchvision ResNet's stem and layers as a multi-scale feature extractor.

    ``layers`` is ``res_features``-style: an ``nn.Sequential`` of conv1, bn1, relu, maxpool,
    layer1, layer2, layer3 (and optionally layer4). Returns [stem (s2), layer1 (s4), layer2 (s8),
    layer3 (s16), (layer4 (s32))].
    """

    def __init__(self, layers: nn.Sequential) -> None:
        super().__init__()
        self.layers = layers

    def forward(self, x: Tensor) -> list[Tensor]:
        conv1, bn1, relu, maxpool, *blocks = list(self.layers)
        x = relu(bn1(conv1(x)))
        feats = [x]
        x = maxpool(x)
        for block in blocks:
            x = block(x)
            feats.append(x)
        return feats


def resnet_channels(arch: str, with_layer4: bool = False) -> tuple[int, ...]:
    expansion = 4 if arch in ("resnet50", "resnet101", "resnet152") else 1
    chans = (64, 64 * expansion, 128 * expansion, 256 * expansion)
    return chans + ((512 * expansion,) if with_layer4 else ())


def file_sha256(path: str | Path | None) -> str | None:
    """sha256 of a file, or of every file in a folder (sorted by name), or None."""
    if path is None:
        return None
    path = Path(path)
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        if path.is_dir():
            digest.update(str(file.relative_to(path)).encode() + b"\0")
        with open(file, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


@dataclass
class UnsupportedSetting(RuntimeError):
    model: str
    setting: str
    reason: str = ""
    extra: dict = field(default_factory=dict)

    def __str__(self) -> str:
        return f"model {self.model!r} does not support the {self.setting!r} setting. {self.reason}".strip()


__all__ = ["ALLOW_DOWNLOAD_ENV", "HOW_TO_ALLOW", "ClassSpec", "Encoder", "ModelAdapter", "ModelEntry", "ResNetTrunk",
           "UnsupportedSetting", "downloads_allowed", "file_sha256", "resnet_channels"]
