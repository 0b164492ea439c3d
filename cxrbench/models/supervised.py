"""Supervised initialisations for fine-tuning and segmentation: torchvision ResNets, no language.

- ``resnet50-random``: a randomly initialised ResNet-50 (initialised when the task asks for the
  encoder, so the run's seed fixes it);
- ``resnet50-imagenet``: torchvision's ImageNet weights, read from the local torch hub cache
  (``$TORCH_HOME/hub/checkpoints``) or from a ``.pth`` file given as the checkpoint. Downloaded into that
  cache only when downloads are allowed (``--allow-download`` / ``CXRBENCH_ALLOW_DOWNLOAD=1``).

The exported encoder is conv1 .. layer3 (strides 2-16), the same cut as MeDSLIP's ``res_features``, so
the fine-tuning task puts the same random layer4 on top for every model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from cxrbench.models.base import (HOW_TO_ALLOW, ClassSpec, Encoder, ModelEntry, ResNetTrunk,
                                  UnsupportedSetting, downloads_allowed, file_sha256, resnet_channels)


class WeightsUnavailable(FileNotFoundError):
    """Pretrained weights are not on this machine (and downloading was not allowed)."""


def imagenet_weights_file(arch: str = "resnet50", weights: str = "IMAGENET1K_V1") -> Path:
    """Where torchvision keeps ``arch``'s ImageNet weights (``torch.hub.get_dir()/checkpoints/<file>``)."""
    import torchvision

    enum = torchvision.models.get_model_weights(arch)
    url = getattr(enum, weights).url
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(url).name


def resolve_imagenet_weights(arch: str = "resnet50", checkpoint: str | Path | None = None,
                             weights: str = "IMAGENET1K_V1", allow_download: bool | None = None) -> Path:
    """The local ImageNet weight file, or :class:`WeightsUnavailable` saying how to provide it.

    When the file is not in the torch hub cache and downloads are allowed (``allow_download``, else
    :func:`cxrbench.downloads.downloads_allowed`), torchvision's file is downloaded there first, its
    sha256 prefix (part of the file name) checked.
    """
    if checkpoint is not None:
        path = Path(checkpoint)
        if not path.is_file():
            raise WeightsUnavailable(f"ImageNet weights file {path} does not exist")
        return path
    path = imagenet_weights_file(arch, weights)
    import torchvision

    url = getattr(torchvision.models.get_model_weights(arch), weights).url
    if not path.is_file() and downloads_allowed(allow_download):
        _download_into_hub_cache(url, path)
    if not path.is_file():
        raise WeightsUnavailable(
            f"torchvision's ImageNet weights for {arch} ({weights}) are not in the local torch hub cache "
            f"({path}). cxrbench never downloads them unless asked: {HOW_TO_ALLOW}. Or put the file there, "
            "e.g. on a machine with internet: "
            f"`python -c \"import torchvision; torchvision.models.{arch}(weights='{weights}')\"` and copy "
            f"{path.name} (from {url}), or pass --checkpoint /path/to/{path.name}.")
    return path


def _download_into_hub_cache(url: str, path: Path) -> None:
    """Download ``url`` to ``path`` (torch hub's downloader: temporary file, then rename; hash prefix checked)."""
    match = torch.hub.HASH_REGEX.search(path.name)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.hub.download_url_to_file(url, str(path), hash_prefix=match.group(1) if match else None, progress=True)


class SupervisedResNetAdapter:
    """A torchvision ResNet as an image encoder only (settings ``ft`` and ``seg``).

    Args:
        name: the registered model name.
        arch: torchvision architecture (``resnet50``).
        weights_file: a torchvision state dict (ImageNet), or None for a random initialisation.
        image_size: evaluation size S (images S x S).
    """

    settings = frozenset({"ft", "seg"})

    def __init__(self, name: str, arch: str = "resnet50", weights_file: str | Path | None = None,
                 image_size: int = 224) -> None:
        self.name = name
        self.arch = arch
        self.weights_file = Path(weights_file) if weights_file else None
        self.image_size = image_size
        self._sha: str | None = None

    def to(self, device: torch.device) -> "SupervisedResNetAdapter":
        return self  # the encoder is built on demand; the task moves it

    def zero_shot(self, images: Tensor, classes: list[ClassSpec]) -> Tensor:
        raise UnsupportedSetting(self.name, "zs", "a supervised image-only initialisation has no text side")

    def ground(self, images: Tensor, classes: list[ClassSpec]) -> Tensor:
        raise UnsupportedSetting(self.name, "ground", "a supervised image-only initialisation has no text side")

    def build_resnet(self) -> nn.Module:
        """The full torchvision ResNet, random (global RNG) or with the ImageNet weights loaded strictly."""
        import torchvision

        model = getattr(torchvision.models, self.arch)(weights=None)
        if self.weights_file is not None:
            state = torch.load(self.weights_file, map_location="cpu", weights_only=True)
            if isinstance(state, dict) and "state_dict" in state:
                state = state["state_dict"]
            model.load_state_dict(state, strict=True)
        return model

    def encoder(self) -> Encoder:
        model = self.build_resnet()
        layers = nn.Sequential(*list(model.children())[:-3])  # conv1, bn1, relu, maxpool, layer1..3
        init = "ImageNet (torchvision)" if self.weights_file else "random init"
        return Encoder(ResNetTrunk(layers), resnet_channels(self.arch), self.arch,
                       source=f"torchvision {self.arch} conv1..layer3, {init}")

    def describe(self) -> dict[str, Any]:
        if self._sha is None and self.weights_file is not None:
            self._sha = file_sha256(self.weights_file)
        return {"name": self.name, "source": "torchvision", "architecture": self.arch,
                "weights": "IMAGENET1K_V1" if self.weights_file else None,
                "initialisation": "imagenet" if self.weights_file else "random (seeded by the run seed)",
                "checkpoint": str(self.weights_file) if self.weights_file else None,
                "checkpoint_sha256": self._sha, "image_size": self.image_size}


def load_random(checkpoint: Path | None = None, image_size: int | None = None, **_: Any) -> SupervisedResNetAdapter:
    """``resnet50-random`` (a checkpoint, if given, is refused: this model has no weights)."""
    if checkpoint is not None:
        raise ValueError("resnet50-random takes no --checkpoint (use resnet50-imagenet for a weight file)")
    return SupervisedResNetAdapter("resnet50-random", "resnet50", None, image_size or 224)


def load_imagenet(checkpoint: Path | None = None, image_size: int | None = None,
                  **_: Any) -> SupervisedResNetAdapter:
    """``resnet50-imagenet``: torchvision's IMAGENET1K_V1 weights from the local cache (or ``checkpoint``);
    downloaded into the cache first only when downloads are allowed."""
    return SupervisedResNetAdapter("resnet50-imagenet", "resnet50", resolve_imagenet_weights("resnet50", checkpoint),
                                   image_size or 224)


RANDOM_ENTRY = ModelEntry("resnet50-random", "randomly initialised torchvision ResNet-50 (supervised baseline)",
                          frozenset({"ft", "seg"}), load_random)
IMAGENET_ENTRY = ModelEntry("resnet50-imagenet", "torchvision ResNet-50 with ImageNet weights from the local torch hub "
                            "cache (downloaded only with --allow-download)", frozenset({"ft", "seg"}), load_imagenet)

__all__ = ["IMAGENET_ENTRY", "RANDOM_ENTRY", "SupervisedResNetAdapter", "WeightsUnavailable", "imagenet_weights_file", "load_imagenet",
           "load_random", "resolve_imagenet_weights"]
