"""The ``open-clip`` model adapter: any open_clip model and pretrained weights the user has locally.

A model is named by a *spec* string (given as ``--checkpoint``):

- ``ARCH:TAG``: an open_clip architecture and pretrained tag (``ViT-B-16:laion2b_s34b_b88k``,
  ``RN50:openai``); the weights are looked up in the local Hugging Face / open_clip caches;
- ``ARCH:/path/to/weights.(bin|pt|safetensors)``: an architecture and a local weight file;
- ``ARCH:random``: the architecture with random weights (tests, sanity baselines; said so in the record);
- ``hf-hub:ORG/REPO``: an open_clip model on the Hugging Face hub (e.g. BiomedCLIP), from the local cache;
- ``local-dir:/path``: a folder with ``open_clip_config.json`` and the weights.

Offline first: nothing is downloaded unless ``allow_download=True`` (Python) or downloads are allowed for
the process (``--allow-download`` / ``CXRBENCH_ALLOW_DOWNLOAD=1``, read through
:func:`cxrbench.downloads.downloads_allowed`); absent weights raise :class:`OpenClipWeightsUnavailable` saying what
is missing and how to provide it. Model creation itself runs with the Hugging Face hub in offline mode.

Zero-shot classification uses prompt sets (:mod:`baselines.clip.prompts`). The harness's ImageNet-
normalised images are re-normalised with the model's own mean / std and evaluated at its input size.
Grounding, fine-tuning and segmentation are not offered: the architectures differ too much (ViT, ConvNeXt,
modified ResNets) for one patch-feature or torchvision-encoder export.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from baselines.clip.prompts import PromptClassifier
from cxrbench.downloads import ALLOW_DOWNLOAD_ENV, HOW_TO_ALLOW, downloads_allowed
from cxrbench.models.base import ClassSpec, Encoder, UnsupportedSetting, file_sha256
from medslip.augment import IMAGENET_MEAN, IMAGENET_STD
from medslip.hub import hub_offline

RANDOM = "random"


class OpenClipWeightsUnavailable(FileNotFoundError):
    """The requested open_clip weights are not on this machine (and downloading was not allowed)."""


def parse_spec(spec: str) -> tuple[str, str | None]:
    """``(model name, pretrained)`` of a spec; ``pretrained`` is None for schema names (hf-hub, local-dir)."""
    spec = str(spec).strip()
    if spec.startswith(("hf-hub:", "local-dir:")):
        return spec, None
    if ":" not in spec:
        raise ValueError(f"open-clip spec {spec!r}: give ARCH:TAG (e.g. ViT-B-16:laion2b_s34b_b88k), "
                         f"ARCH:/path/to/weights, ARCH:{RANDOM}, hf-hub:ORG/REPO or local-dir:/path")
    arch, pretrained = spec.split(":", 1)
    return arch, pretrained


def resolve_pretrained(arch: str, pretrained: str, allow_download: bool = False,
                       cache_dir: str | None = None) -> tuple[str | None, dict[str, Any]]:
    """(local weight file or None for random, the tag's pretrained config) for ``arch`` + ``pretrained``."""
    import open_clip
    from open_clip.pretrained import download_pretrained

    if arch not in open_clip.list_models():
        raise ValueError(f"unknown open_clip architecture {arch!r} (open_clip.list_models() lists them)")
    if pretrained == RANDOM:
        return None, {}
    if Path(pretrained).is_file():
        return str(pretrained), {}
    cfg = open_clip.get_pretrained_cfg(arch, pretrained)
    if not cfg:
        tags = open_clip.list_pretrained_tags_by_model(arch)
        raise ValueError(f"{pretrained!r} is neither a pretrained tag of {arch} ({', '.join(tags) or 'none'}) "
                         "nor an existing weight file")
    if allow_download:
        return download_pretrained(cfg, cache_dir=cache_dir), cfg
    hub_cfg = {k: v for k, v in cfg.items() if k != "url"}
    if cfg.get("hf_hub"):
        try:
            with hub_offline():
                return download_pretrained(hub_cfg, cache_dir=cache_dir), cfg
        except Exception:  # not in the local hub cache: try the URL cache below
            pass
    url = cfg.get("url")
    if url:
        local = Path(cache_dir or Path.home() / ".cache" / "clip") / os.path.basename(url)
        if local.is_file():
            return str(local), cfg
    where = f"hf hub {cfg.get('hf_hub')!r}" if cfg.get("hf_hub") else f"url {url}"
    raise OpenClipWeightsUnavailable(
        f"open_clip weights {arch}:{pretrained} are not on this machine ({where}; looked in the Hugging Face "
        f"cache and {cache_dir or '~/.cache/clip'}). cxrbench does not download them unless asked: "
        f"{HOW_TO_ALLOW} (Python: allow_download=True), download them elsewhere and copy the cache, "
        f"or give a local file as {arch}:/path/to/weights.")


class OpenClipAdapter:
    """An open_clip model (``create_model`` + ``get_tokenizer``) behind the harness's contract (``zs`` only)."""

    name = "open-clip"
    settings = frozenset({"zs"})

    def __init__(self, model: torch.nn.Module, tokenizer, spec: str, arch: str, pretrained: str | None,
                 weights_file: str | None, image_size: int | None = None) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.spec, self.arch, self.pretrained, self.weights_file = spec, arch, pretrained, weights_file
        pp = dict(getattr(model.visual, "preprocess_cfg", {}) or {})
        size = pp.get("size", getattr(model.visual, "image_size", 224))
        size = size[0] if isinstance(size, (tuple, list)) else size
        self.image_size = int(image_size or size)
        self.mean = tuple(pp.get("mean", (0.48145466, 0.4578275, 0.40821073)))
        self.std = tuple(pp.get("std", (0.26862954, 0.26130258, 0.27577711)))
        self.prompts = PromptClassifier(self._embed_texts)
        self._sha: str | None = None

    @classmethod
    def load(cls, spec: str, allow_download: bool | None = None, image_size: int | None = None,
             cache_dir: str | None = None) -> "OpenClipAdapter":
        """Create the model of ``spec`` from local weights (see the module docstring for the forms)."""
        import open_clip

        allow = downloads_allowed(allow_download)
        name, pretrained = parse_spec(spec)
        kwargs: dict[str, Any] = {}
        if image_size is not None:
            kwargs["force_image_size"] = image_size
        weights_file = None
        try:
            with hub_offline(not allow):
                if pretrained is None:  # hf-hub: / local-dir: carry their own config and weights
                    model = open_clip.create_model(name, cache_dir=cache_dir, **kwargs)
                    arch = name
                else:
                    weights_file, cfg = resolve_pretrained(name, pretrained, allow, cache_dir)
                    if cfg.get("quick_gelu"):
                        kwargs["force_quick_gelu"] = True
                    model = open_clip.create_model(name, pretrained=weights_file, cache_dir=cache_dir,
                                                   pretrained_image=False, pretrained_text=False, **kwargs)
                    arch = name
                tokenizer = open_clip.get_tokenizer(name, cache_dir=cache_dir)
        except OpenClipWeightsUnavailable:
            raise
        except Exception as exc:
            if pretrained is None and not allow:
                raise OpenClipWeightsUnavailable(
                    f"open_clip model {name!r} could not be created from the local caches ({exc.__class__.__name__}: "
                    f"{exc}). cxrbench does not download unless asked: {HOW_TO_ALLOW}, or copy the "
                    "Hugging Face cache from a machine with internet.") from exc
            raise
        return cls(model, tokenizer, str(spec), arch, pretrained, weights_file, image_size)

    def to(self, device: torch.device) -> "OpenClipAdapter":
        self.model.to(device)
        return self

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def _embed_texts(self, texts: list[str]) -> Tensor:
        return self.model.encode_text(self.tokenizer(texts).to(self.device))

    def _renormalise(self, images: Tensor) -> Tensor:
        """ImageNet-normalised images -> the model's own normalisation."""
        shape = (1, 3, 1, 1)
        unit = images * torch.tensor(IMAGENET_STD).view(shape) + torch.tensor(IMAGENET_MEAN).view(shape)
        return (unit - torch.tensor(self.mean).view(shape)) / torch.tensor(self.std).view(shape)

    @torch.no_grad()
    def zero_shot(self, images: Tensor, classes: list[ClassSpec]) -> Tensor:
        """Normalised images (B x 3 x S x S) -> B x C probabilities (positive vs negative prompt sets)."""
        emb = self.model.encode_image(self._renormalise(images.float()).to(self.device))
        scale = self.model.logit_scale.exp().clamp(max=100.0)
        return self.prompts.probabilities(emb, classes, scale).cpu()

    def ground(self, images: Tensor, classes: list[ClassSpec]) -> Tensor:
        raise UnsupportedSetting(self.name, "ground", "the generic open_clip adapter offers zero-shot "
                                 "classification only")

    def encoder(self) -> Encoder:
        raise UnsupportedSetting(self.name, "ft", "the generic open_clip adapter exports no torchvision "
                                 "encoder (use the clip baseline for ft / seg)")

    def describe(self) -> dict[str, Any]:
        if self._sha is None and self.weights_file is not None:
            self._sha = file_sha256(self.weights_file)
        import open_clip

        return {"name": self.name, "source": "open_clip", "spec": self.spec, "architecture": self.arch,
                "pretrained": self.pretrained, "random_weights": self.pretrained == RANDOM,
                "checkpoint": self.weights_file, "checkpoint_sha256": self._sha, "image_size": self.image_size,
                "normalisation": {"mean": list(self.mean), "std": list(self.std)},
                "open_clip_version": open_clip.__version__,
                "zero_shot": "prompt sets: softmax(scale * [cos(img, mean pos), cos(img, mean neg)])"}


def load_open_clip(checkpoint: Path | str | None = None, allow_download: bool | None = None,
                   image_size: int | None = None, **_: Any) -> OpenClipAdapter:
    """Registry loader: ``checkpoint`` is the spec (``ARCH:TAG``, ``hf-hub:ORG/REPO`` ...)."""
    if checkpoint is None:
        raise ValueError("open-clip needs --checkpoint SPEC: ARCH:TAG (e.g. ViT-B-16:laion2b_s34b_b88k), "
                         f"ARCH:/path/to/weights, ARCH:{RANDOM}, hf-hub:ORG/REPO or local-dir:/path")
    return OpenClipAdapter.load(str(checkpoint), allow_download=allow_download, image_size=image_size)


__all__ = ["ALLOW_DOWNLOAD_ENV", "OpenClipAdapter", "OpenClipWeightsUnavailable", "hub_offline", "load_open_clip",
           "parse_spec", "resolve_pretrained"]
