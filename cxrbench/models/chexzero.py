"""The CheXzero adapter (and the OpenAI-CLIP-layout zoo adapter PubMedCLIP reuses).

- zero-shot: the published rule (``chexzero-pair-softmax``: per class, softmax over the raw cosines with
  ``"<label>"`` and ``"no <label>"``) or ``chexzero-zscore-sigmoid``; the harness's ImageNet-normalised images are
  mapped to CheXzero's normalisation (mean 101.48761, std 83.43944 on the 0-255 scale); an ensemble
  (``--checkpoint a.pt,b.pt`` or a folder) averages the probabilities, as ``ensemble_models`` does;
- ft: the ViT's patch-token grid (:mod:`baselines.vit_encoder`) of the first checkpoint;
- ``--checkpoint random`` / ``random-reduced``: random weights of ViT-B/32 / of the catalog's small configuration.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import Tensor, nn

from cxrbench.models.base import ClassSpec, Encoder, ModelEntry, UnsupportedSetting
from cxrbench.zoo.adapters import RANDOM_REDUCED, ZooWeightsMissing, choose_rule, random_kind, split_checkpoints, zoo_identity
from cxrbench.zoo.catalog import get_entry
from medslip.augment import IMAGENET_MEAN, IMAGENET_STD


def _label_text(spec: ClassSpec) -> str:
    return spec.label.replace("_", " ")


class OpenAIClipZooAdapter:
    """One or more OpenAI-layout CLIP checkpoints (open_clip models) behind the adapter contract."""

    name = "openai-clip-zoo"
    settings = frozenset({"zs", "ft"})
    #: the tower's normalisation on the 0-1 scale
    mean: tuple[float, ...] = (0.48145466, 0.4578275, 0.40821073)
    std: tuple[float, ...] = (0.26862954, 0.26130258, 0.27577711)
    unsupported = {"ground": "the published model has no grounding method (and a ViT-B/32 grid is 7 x 7)",
                   "seg": "a ViT image tower has no feature pyramid for a segmentation decoder"}

    def __init__(self, models: Sequence[nn.Module], config, files: Sequence[Path], rule: str,
                 random: str | None = None) -> None:
        self.models = [m.eval() for m in models]
        self.config = config
        self.files = list(files)
        self.rule = rule
        self.random = random
        self.image_size = int(config.image_resolution)
        self._text_cache: dict[tuple, Tensor] = {}

    # ------------------------------------------------------------------ plumbing
    def to(self, device: torch.device) -> "OpenAIClipZooAdapter":
        for m in self.models:
            m.to(device)
        self._text_cache.clear()
        return self

    @property
    def device(self) -> torch.device:
        return next(self.models[0].parameters()).device

    def _renormalise(self, images: Tensor) -> Tensor:
        shape = (1, 3, 1, 1)
        unit = images.float() * torch.tensor(IMAGENET_STD).view(shape) + torch.tensor(IMAGENET_MEAN).view(shape)
        return (unit - torch.tensor(self.mean).view(shape)) / torch.tensor(self.std).view(shape)

    def _tokens(self, texts: Sequence[str]) -> Tensor:
        from baselines.chexzero.zero_shot import tokenize

        return tokenize(texts, self.config.context_length)

    def _embed(self, index: int, texts: Sequence[str]) -> Tensor:
        """Text features of ``texts`` (one at a time, as CheXzero's loop) by model ``index`` (cached)."""
        key = (index, tuple(texts))
        if key not in self._text_cache:
            model = self.models[index]
            tokens = self._tokens(texts).to(self.device)
            with torch.no_grad():
                self._text_cache[key] = torch.cat([model.encode_text(tokens[i:i + 1]) for i in range(len(texts))]).float()
        return self._text_cache[key]

    # ------------------------------------------------------------------ settings
    def scores(self, index: int, image_features: Tensor, classes: list[ClassSpec]) -> Tensor:  # pragma: no cover
        raise NotImplementedError

    @torch.no_grad()
    def zero_shot(self, images: Tensor, classes: list[ClassSpec]) -> Tensor:
        x = self._renormalise(images).to(self.device)
        probs = [self.scores(i, m.encode_image(x).float(), classes) for i, m in enumerate(self.models)]
        return torch.stack(probs).mean(0).cpu()

    def ground(self, images: Tensor, classes: list[ClassSpec]) -> Tensor:
        raise UnsupportedSetting(self.name, "ground", self.unsupported["ground"])

    def encoder(self) -> Encoder:
        from baselines.vit_encoder import OpenClipViTGrid, random_grid_block, renormalisation

        scale, shift = renormalisation(IMAGENET_MEAN, IMAGENET_STD, self.mean, self.std)
        width = self.config.vision_width
        note = " (the first checkpoint of the ensemble)" if len(self.models) > 1 else ""
        return Encoder(OpenClipViTGrid(self.models[0].visual, scale, shift), (width,),
                       f"{self.name} ViT-B/{self.config.vision_patch_size}",
                       source=f"{self.name} image tower: last-block patch tokens after ln_post{note}",
                       layer4=partial(random_grid_block, width))

    def describe(self) -> dict[str, Any]:
        return zoo_identity(self.name, self.files, self.rule, self.random, config=self.config.to_dict(),
                            image_size=self.image_size, n_checkpoints=max(1, len(self.files)),
                            normalisation={"mean": list(self.mean), "std": list(self.std)},
                            settings=sorted(self.settings))


class ChexzeroAdapter(OpenAIClipZooAdapter):
    name = "chexzero"
    mean = (101.48761 / 255.0,) * 3
    std = (83.43944 / 255.0,) * 3

    def _weights(self, index: int, texts: list[str]) -> Tensor:
        """``zeroshot_classifier`` with a one-template list: D x C."""
        from baselines.chexzero.zero_shot import class_weights

        key = ("weights", index, tuple(texts))
        if key not in self._text_cache:
            self._text_cache[key] = class_weights(self.models[index], [self._tokens(texts)]).float()
        return self._text_cache[key]

    def scores(self, index: int, image_features: Tensor, classes: list[ClassSpec]) -> Tensor:
        from baselines.chexzero import zero_shot as zs

        pos, neg = zs.prompts([_label_text(c) for c in classes])
        cos_pos = zs.cosines(image_features, self._weights(index, pos))
        cos_neg = zs.cosines(image_features, self._weights(index, neg)) if self.rule == zs.PAIR_SOFTMAX else None
        return zs.score(self.rule, cos_pos, cos_neg)

    def describe(self) -> dict[str, Any]:
        out = super().describe()
        out["zero_shot"] = {"chexzero-pair-softmax": "per class softmax over raw cos(img, '<label>') and "
                            "cos(img, 'no <label>'); ensemble = mean of probabilities",
                            "chexzero-zscore-sigmoid": "per image sigmoid of the z-score (ddof 0) of cos(img, "
                            "'<label>') over the task's labels; ensemble = mean"}[self.rule]
        return out


def reduced_config(name: str):
    from baselines.chexzero.model import OpenAIClipConfig

    r = get_entry(name).reduced
    return OpenAIClipConfig(embed_dim=r["embed_dim"], image_resolution=r["image_size"], vision_layers=r["vision_layers"],
                            vision_width=r["vision_width"], vision_patch_size=r["vision_patch_size"],
                            context_length=r["context_length"], vocab_size=r["vocab_size"],
                            transformer_width=r["text_width"], transformer_heads=r["text_heads"],
                            transformer_layers=r["text_layers"])


def load_openai_zoo(cls: type[OpenAIClipZooAdapter], name: str, checkpoint: Path | str | None = None,
                    image_size: int | None = None, zero_shot_rule: str | None = None) -> OpenAIClipZooAdapter:
    from baselines.chexzero.model import VIT_B32, load_openai_clip_file, random_openai_clip

    entry = get_entry(name)
    rule = choose_rule(entry, zero_shot_rule)
    kind = random_kind(checkpoint)
    if kind is not None:
        config = reduced_config(name) if kind == RANDOM_REDUCED else VIT_B32
        models, files = [random_openai_clip(config)], []
    else:
        if checkpoint is None:
            folder = entry.folder()
            if not (folder.is_dir() and any(folder.iterdir())):
                raise ZooWeightsMissing(
                    f"{name} needs --checkpoint: a released file, several (a.pt,b.pt) or a folder; or random / "
                    f"{RANDOM_REDUCED}. `cxrbench zoo fetch {name}` says where to get them ({folder} is empty)")
            checkpoint = folder
        files = split_checkpoints(checkpoint)
        loaded = [load_openai_clip_file(f) for f in files]
        configs = {c for _, c in loaded}
        if len(configs) > 1:
            raise ValueError(f"{name}: the checkpoints of an ensemble must share one architecture; got "
                             f"{len(configs)} different ones")
        models, config = [m for m, _ in loaded], loaded[0][1]
    if image_size is not None and image_size != config.image_resolution:
        raise ValueError(f"{name} evaluates at its trained size {config.image_resolution} px (--image-size "
                         f"{image_size} would need a resized positional embedding)")
    return cls(models, config, files, rule, kind)


def verify_openai_zoo(name: str, path: Path) -> str:
    from baselines.chexzero.model import load_openai_clip_file

    files = split_checkpoints(path)
    configs = [load_openai_clip_file(f)[1] for f in files]
    c = configs[0]
    return (f"{len(files)} file(s) load strictly (ViT-B/{c.vision_patch_size} {c.vision_width} x {c.vision_layers}, "
            f"text {c.transformer_width} x {c.transformer_layers}, embed {c.embed_dim})")


def load(checkpoint: Path | None = None, image_size: int | None = None, zero_shot_rule: str | None = None,
         **_: Any) -> ChexzeroAdapter:
    return load_openai_zoo(ChexzeroAdapter, "chexzero", checkpoint, image_size, zero_shot_rule)


def verify_checkpoint(name: str, path: Path) -> str:
    return verify_openai_zoo(name, path)


ENTRY = ModelEntry("chexzero", "CheXzero (zoo): OpenAI CLIP ViT-B/32 on MIMIC-CXR; its pair-softmax rule, checkpoint "
                   "ensembles (--checkpoint a.pt,b.pt); zs, ft", frozenset({"zs", "ft"}), load)

__all__ = ["ENTRY", "ChexzeroAdapter", "OpenAIClipZooAdapter", "load", "load_openai_zoo", "reduced_config",
           "verify_checkpoint", "verify_openai_zoo"]
