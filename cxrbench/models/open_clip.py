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

Random weights (``ARCH:random``) are drawn with a fixed seed (:data:`RANDOM_SEED`), so every load of a spec
gives the same model.

What is offered depends on the image tower (``adapter.settings``; :func:`tower_kind`):

- zero-shot classification (``zs``), every tower: prompt sets, positive vs negative
  (:mod:`baselines.clip.prompts`). The harness's ImageNet-normalised images are re-normalised with the
  model's own mean / std and evaluated at its input size.
- zero-shot grounding (``ground``), towers with a patch grid:

  * open_clip's ``ModifiedResNet`` (RN50, RN101, RN50x4, ...): the layer4 feature map (stride 32, before
    the attention pool) with the attention pool's value and output projections (``v_proj``, ``c_proj``)
    applied at every position. The pooled image embedding is an attention-weighted mean of exactly these
    projected values (plus a positional term), so each position lands in the joint image-text space (the
    MaskCLIP dense-prediction recipe; the positional embedding, image-independent, is left out);
  * open_clip's ``VisionTransformer`` (ViT-B-16, ViT-L-14, ...) with token or average pooling: the patch
    tokens of the last block (open_clip's ``output_tokens``) after ``ln_post`` and ``proj``, as the pooled
    embedding is made;

  the map of a class is ``cos(patch, positive) - cos(patch, negative)`` with the class's prompt-set
  embeddings (higher = more likely there), the per-position counterpart of the zero-shot score.
- an encoder for fine-tuning and segmentation (``ft``, ``seg``), ModifiedResNet towers only: the 3-conv
  stem (features taken before its average pool, stride 2) and layer1..layer3 (strides 4, 8, 16), with the
  re-normalisation built in; the fine-tuning head adds a randomly initialised layer4 of the same
  ModifiedResNet (its anti-aliased bottlenecks and open_clip's init), as every other model gets a random
  layer4 of its own ResNet.

timm towers (ConvNeXt, SigLIP, EVA, BiomedCLIP's ViT ...), Hugging Face vision towers and attention-pooled
ViTs (CoCa) offer ``zs`` only; ViTs export no convolutional encoder, so no ``ft`` / ``seg``. Asking for an
unsupported setting raises :class:`~cxrbench.models.base.UnsupportedSetting` saying why.
"""

from __future__ import annotations

import contextlib
import logging

import copy
import os
from functools import partial
from pathlib import Path
from typing import Any, Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from baselines.clip.prompts import PromptClassifier
from cxrbench.models.base import (ALLOW_DOWNLOAD_ENV, HOW_TO_ALLOW, ClassSpec, Encoder, ModelEntry,
                                  UnsupportedSetting, downloads_allowed, file_sha256)
from medslip.augment import IMAGENET_MEAN, IMAGENET_STD
from medslip.hub import hub_offline

RANDOM = "random"
#: Seed of the weights of ``ARCH:random`` models (reproducible random baselines).
RANDOM_SEED = 0

MODIFIED_RESNET = "modified-resnet"
VIT = "vit"


class OpenClipWeightsUnavailable(FileNotFoundError):
    """The requested open_clip weights are not on this machine (and downloading was not allowed)."""


@contextlib.contextmanager
def _quiet_root_logger(enabled: bool) -> Iterator[None]:
    """Swallow open_clip's root-logger "initialized randomly" warning when random weights were asked for.

    open_clip logs it with ``logging.warning``, which on a root logger without handlers also installs
    a console handler for the whole process (after that every library's warnings print). A temporary
    null handler keeps both from happening; the record says ``random_weights: true`` instead.
    """
    if not enabled:
        yield
        return
    root = logging.getLogger()
    handler = logging.NullHandler()
    root.addHandler(handler)
    try:
        yield
    finally:
        root.removeHandler(handler)


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


def tower_kind(visual: nn.Module) -> str | None:
    """``"modified-resnet"``, ``"vit"`` (a token- or average-pooled open_clip ViT) or None (any other tower)."""
    from open_clip.modified_resnet import ModifiedResNet
    from open_clip.transformer import VisionTransformer

    if isinstance(visual, ModifiedResNet) and getattr(visual, "attnpool", None) is not None:
        return MODIFIED_RESNET
    if (isinstance(visual, VisionTransformer) and getattr(visual, "attn_pool", None) is None
            and getattr(visual, "pool_type", "tok") in ("tok", "avg") and visual.proj is not None):
        return VIT
    return None


def unsupported_reasons(kind: str | None, visual: nn.Module) -> dict[str, str]:
    """Setting -> why a tower of this kind does not offer it (settings it offers are absent)."""
    tower = type(visual).__name__
    reasons: dict[str, str] = {}
    if kind is None:
        reasons["ground"] = (f"grounding needs open_clip's ModifiedResNet (RN50, RN101, ...) or VisionTransformer "
                             f"(ViT-B-16, ...) image tower; this model's is {tower} (timm / Hugging Face / "
                             "attention-pooled towers are zero-shot classification only)")
    if kind != MODIFIED_RESNET:
        why = ("a ViT has no convolutional feature pyramid" if kind == VIT else f"its image tower is {tower}")
        for setting in ("ft", "seg"):
            reasons[setting] = (f"the open-clip adapter exports an encoder for ModifiedResNet towers (RN50, RN101, "
                                f"...) only; {why} (use the clip baseline or an RN model for ft / seg)")
    return reasons


class ModifiedResNetTrunk(nn.Module):
    """An open_clip ModifiedResNet's stem and layer1..layer3 as a multi-scale feature extractor.

    Takes ImageNet-normalised images (B x 3 x S x S), re-normalises them to the model's own mean / std
    (``x * scale + shift``, fixed) and returns [stem after its third conv, before the average pool (stride 2,
    ``width`` channels), layer1 (s4, 4 width), layer2 (s8, 8 width), layer3 (s16, 16 width)].
    The modules are copies: training the trunk leaves the adapter's model untouched.
    """

    def __init__(self, tower: nn.Module, scale: Tensor, shift: Tensor) -> None:
        super().__init__()
        self.stem = copy.deepcopy(nn.Sequential(tower.conv1, tower.bn1, tower.act1, tower.conv2, tower.bn2,
                                                tower.act2, tower.conv3, tower.bn3, tower.act3))
        self.avgpool = copy.deepcopy(tower.avgpool)
        self.layers = copy.deepcopy(nn.ModuleList([tower.layer1, tower.layer2, tower.layer3]))
        self.register_buffer("scale", scale.reshape(1, 3, 1, 1).float(), persistent=False)
        self.register_buffer("shift", shift.reshape(1, 3, 1, 1).float(), persistent=False)

    def forward(self, x: Tensor) -> list[Tensor]:
        x = self.stem(x * self.scale + self.shift)
        feats = [x]
        x = self.avgpool(x)
        for layer in self.layers:
            x = layer(x)
            feats.append(x)
        return feats


def random_modified_resnet_layer4(inplanes: int, planes: int, blocks: int) -> nn.Sequential:
    """A randomly initialised ModifiedResNet layer4: ``blocks`` anti-aliased bottlenecks, the first with
    stride 2 (``inplanes`` -> ``4 planes`` channels), initialised as open_clip does (last BN of each block
    zero, PyTorch defaults elsewhere)."""
    from open_clip.modified_resnet import Bottleneck

    layer = nn.Sequential(Bottleneck(inplanes, planes, stride=2),
                          *[Bottleneck(planes * Bottleneck.expansion, planes) for _ in range(blocks - 1)])
    for name, param in layer.named_parameters():
        if name.endswith("bn3.weight"):
            nn.init.zeros_(param)
    return layer


class OpenClipAdapter:
    """An open_clip model (``create_model`` + ``get_tokenizer``) behind the harness's contract.

    ``settings`` depends on the image tower (see the module docstring): ``zs`` always, ``ground`` for
    ModifiedResNet and ViT towers, ``ft`` / ``seg`` for ModifiedResNet towers.
    """

    name = "open-clip"

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
        self.tower = tower_kind(model.visual)
        #: setting -> why it is not offered, for the settings this model's tower does not support
        self.unsupported = unsupported_reasons(self.tower, model.visual)
        self.settings = frozenset({"zs", "ground", "ft", "seg"} - set(self.unsupported))
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
                    with torch.random.fork_rng(devices=[]), _quiet_root_logger(weights_file is None):
                        torch.manual_seed(RANDOM_SEED)  # random weights: the same for every load
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
        return self.prompts.probabilities(emb, [c.prompt_sets() for c in classes], scale).cpu()

    def _require(self, setting: str) -> None:
        if setting in self.unsupported:
            raise UnsupportedSetting(self.name, setting, f"{self.spec}: {self.unsupported[setting]}.")

    @torch.no_grad()
    def patch_embeddings(self, images: Tensor) -> Tensor:
        """Normalised images (B x 3 x S x S) -> B x h x w x D patch embeddings in the joint space.

        ModifiedResNet: layer4 (h = S / 32) through the attention pool's ``v_proj`` and ``c_proj``;
        ViT: the last block's patch tokens (h = S / patch) through ``ln_post`` and ``proj``.
        """
        self._require("ground")
        visual = self.model.visual
        x = self._renormalise(images.float()).to(self.device)
        if self.tower == MODIFIED_RESNET:
            x = visual.stem(x)
            for layer in (visual.layer1, visual.layer2, visual.layer3, visual.layer4):
                x = layer(x)
            pool = visual.attnpool
            return pool.c_proj(pool.v_proj(x.permute(0, 2, 3, 1)))
        from baselines.clip.model import vit_patch_embeddings

        return vit_patch_embeddings(visual, x)

    @torch.no_grad()
    def ground(self, images: Tensor, classes: list[ClassSpec]) -> Tensor:
        """Normalised images (B x 3 x S x S) -> B x C x h x w maps: cos(patch, positive) - cos(patch, negative)
        with each class's prompt-set embeddings (h = S / 32 for ModifiedResNets, S / patch for ViTs)."""
        patches = F.normalize(self.patch_embeddings(images).float(), dim=-1)
        pos, neg = self.prompts.class_embeddings([c.prompt_sets() for c in classes])
        maps = torch.einsum("bhwd,cd->bchw", patches, (pos - neg).to(patches.device))
        return maps.cpu()

    def encoder(self) -> Encoder:
        """ModifiedResNet towers: stem + layer1..layer3 (strides 2, 4, 8, 16) and a random-layer4 factory."""
        self._require("ft")
        visual = self.model.visual
        channels = (visual.conv3.out_channels,
                    *(layer[-1].conv3.out_channels for layer in (visual.layer1, visual.layer2, visual.layer3)))
        imagenet_std, imagenet_mean = torch.tensor(IMAGENET_STD), torch.tensor(IMAGENET_MEAN)
        mean, std = torch.tensor(self.mean), torch.tensor(self.std)
        trunk = ModifiedResNetTrunk(visual, imagenet_std / std, (imagenet_mean - mean) / std)
        layer4 = partial(random_modified_resnet_layer4, channels[-1], visual.layer4[0].conv1.out_channels,
                         len(visual.layer4))
        return Encoder(trunk, channels, f"open_clip {self.arch} ModifiedResNet",
                       source=f"open_clip {self.spec} image tower (ModifiedResNet stem + layer1..layer3)",
                       layer4=layer4)

    def describe(self) -> dict[str, Any]:
        if self._sha is None and self.weights_file is not None:
            self._sha = file_sha256(self.weights_file)
        import open_clip

        return {"name": self.name, "source": "open_clip", "spec": self.spec, "architecture": self.arch,
                "pretrained": self.pretrained, "random_weights": self.pretrained == RANDOM,
                "checkpoint": self.weights_file, "checkpoint_sha256": self._sha, "image_size": self.image_size,
                "normalisation": {"mean": list(self.mean), "std": list(self.std)},
                "open_clip_version": open_clip.__version__, "image_tower": type(self.model.visual).__name__,
                "settings": sorted(self.settings),
                "zero_shot": "prompt sets: softmax(scale * [cos(img, mean pos), cos(img, mean neg)])",
                "grounding": GROUNDING.get(self.tower)}


GROUNDING = {
    MODIFIED_RESNET: "cos(c_proj(v_proj(layer4 position)), pos) - cos(..., neg) (attention-pool value path)",
    VIT: "cos(proj(ln_post(last-block patch token)), pos) - cos(..., neg)",
}


def load_open_clip(checkpoint: Path | str | None = None, allow_download: bool | None = None,
                   image_size: int | None = None, **_: Any) -> OpenClipAdapter:
    """Registry loader: ``checkpoint`` is the spec (``ARCH:TAG``, ``hf-hub:ORG/REPO`` ...)."""
    if checkpoint is None:
        raise ValueError("open-clip needs --checkpoint SPEC: ARCH:TAG (e.g. ViT-B-16:laion2b_s34b_b88k), "
                         f"ARCH:/path/to/weights, ARCH:{RANDOM}, hf-hub:ORG/REPO or local-dir:/path")
    return OpenClipAdapter.load(str(checkpoint), allow_download=allow_download, image_size=image_size)


ENTRY = ModelEntry("open-clip", "any open_clip model with local weights: --checkpoint ARCH:TAG | ARCH:/weights | "
                   "ARCH:random | hf-hub:ORG/REPO | local-dir:/path; zs for every model, ground for RN and ViT "
                   "towers, ft / seg for RN towers", frozenset({"zs", "ground", "ft", "seg"}), load_open_clip)

__all__ = ["ENTRY", "ALLOW_DOWNLOAD_ENV", "MODIFIED_RESNET", "RANDOM_SEED", "VIT", "ModifiedResNetTrunk", "OpenClipAdapter",
           "OpenClipWeightsUnavailable", "hub_offline", "load_open_clip", "parse_spec", "random_modified_resnet_layer4",
           "resolve_pretrained", "tower_kind", "unsupported_reasons"]
