"""The ``biovil`` and ``biovil-t`` model adapters (model code: :mod:`baselines.biovil`).

Weights (``--checkpoint``):

- a folder: a snapshot of the Hugging Face repo (``microsoft/BiomedVLP-CXR-BERT-specialized`` at ``v1.1`` for
  BioViL, ``microsoft/BiomedVLP-BioViL-T`` at ``v1.0`` for BioViL-T): the image ``.pt`` beside CXR-BERT's
  ``config.json``, ``pytorch_model.bin`` and ``vocab.txt``;
- the image ``.pt`` alone, with ``--text-encoder`` naming the CXR-BERT folder;
- ``random`` (the released architecture, seeded) or ``random-reduced`` (ResNet-18 trunk, a 2-layer text tower,
  small images; tests): random weights, said so in the record;
- nothing: the repo snapshot from the local Hugging Face cache; downloaded only when downloads are allowed.

Batches: the published engine embeds one image at a time; the adapter runs the batch at once (eval-mode
BatchNorm, so the same values up to float rounding) and caches each prompt set's embedding.

What the harness gets (every setting):

- prompts: the published sets where hi-ml has them (pneumonia, :mod:`baselines.biovil.prompts`), else the
  task's positive / negative prompts;
- ``zs``: the published rule per class, s+ = cos(image, positive prompt set) and s- likewise (each set: the
  L2-normalised mean of the unnormalised prompt embeddings); BioViL predicts present iff s+ > s-. The harness
  needs a score in [0, 1] for AUROC, so the adapter gives ``p = (1 + s+ - s-) / 2``: monotone in s+ - s-, and
  p > 0.5 exactly when the published decision is positive. No softmax or temperature (BioViL has none).
- ``ground``: the published map (cosine of each normalised patch with the class's positive-set embedding,
  Gaussian sigma 1.5), put back onto the evaluated image as published (nearest, on the central
  int(crop * S / resize) square); outside it, where the published map is NaN, the map's minimum.
- ``ft`` / ``seg``: the ResNet trunk (conv1 .. layer3), taking the harness's ImageNet-normalised input back to
  BioViL's [0, 1] range first.

Images: the harness gives S x S images (S = ``image_size``, the published Resize 512 by default); the adapter
undoes the ImageNet normalisation (BioViL uses none), resizes the shorter side to 512 and centre-crops 480
(448 for BioViL-T) as the published transform does.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from cxrbench.downloads import HOW_TO_ALLOW, downloads_allowed
from cxrbench.metrics.grounding_postprocess import PublishedGrounding
from cxrbench.models.base import ClassSpec, Encoder, ModelEntry, ResNetTrunk, file_sha256, resnet_channels
from medslip.augment import IMAGENET_MEAN, IMAGENET_STD

RANDOM, RANDOM_REDUCED = "random", "random-reduced"
ZERO_SHOT_RULE = "biovil-pos-vs-neg-cosine"
ZERO_SHOT_TEXT = ("per class s+ = cos(img, normalize(mean raw_cls_proj(positive prompts))), s- likewise; "
                  "published decision s+ > s-; score p = (1 + s+ - s-) / 2 (p > 0.5 iff s+ > s-); "
                  "per image, no softmax, no temperature")
GROUNDING_TEXT = ("cos(normalized projected patch, normalized positive-set embedding), Gaussian sigma 1.5 "
                  "(scipy, reflect), nearest onto the central int(crop * S / resize) square of the S x S image; "
                  "outside it (NaN as published) the map's minimum")


class BiovilWeightsUnavailable(FileNotFoundError):
    """The released files are not on this machine (and downloading was not allowed)."""


class UnitRange(nn.Module):
    """ImageNet-normalised images -> BioViL's [0, 1] input (fixed scale and shift), then ``module``."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: Tensor):
        return self.module(x * self.std + self.mean)


class BiovilAdapter:
    """BioViL / BioViL-T behind the harness contract (see the module docstring)."""

    settings = frozenset({"zs", "ground", "ft", "seg"})
    #: hi-ml's get_similarity_map_from_embeddings + resize: ``ground`` already returns that map (raw cosine,
    #: Gaussian sigma 1.5, nearest onto the image); BioViL publishes no binarisation (its MS-CXR metric is CNR)
    published_grounding = {"published": PublishedGrounding("hi-ml BioViL similarity map", normalise="none",
                                                           upsample="as-given", threshold=None)}

    def __init__(self, model, name: str = "biovil", weights: str = "released", files: dict[str, Path] | None = None,
                 image_size: int | None = None, reduced: bool = False) -> None:
        self.model = model
        self.name = name
        self.weights = weights
        self.files = {k: Path(v) for k, v in (files or {}).items()}
        self.image_size = int(image_size or model.resize)
        self.reduced = reduced
        self._digests: dict[str, Any] | None = None
        self._unit = UnitRange(nn.Identity())

    def to(self, device: torch.device) -> "BiovilAdapter":
        self.model.to(device)
        self._unit.to(device)
        return self

    @property
    def device(self) -> torch.device:
        return self.model.device

    def _inputs(self, images: Tensor) -> Tensor:
        """Harness images (ImageNet-normalised, B x 3 x S x S) -> the published model input (B x 3 x crop x crop)."""
        from baselines.biovil.image import tensor_transform

        unit = self._unit(images.float().to(self.device)).clamp(0.0, 1.0)
        return tensor_transform(unit, self.model.resize, self.model.crop)

    @staticmethod
    def _prompt_sets(classes: list[ClassSpec]) -> list[tuple[tuple[str, ...], tuple[str, ...]]]:
        """The published sets where BioViL's code has them (pneumonia), else the task's own prompts."""
        from baselines.biovil.prompts import published_prompts

        return [published_prompts(c.label) or c.prompt_sets() for c in classes]

    @torch.no_grad()
    def scores(self, images: Tensor, classes: list[ClassSpec]) -> Tensor:
        """B x C x 2 published scores [s+, s-]."""
        return self.model.zero_shot_scores(self._inputs(images), self._prompt_sets(classes), per_image=False).cpu()

    @torch.no_grad()
    def zero_shot(self, images: Tensor, classes: list[ClassSpec]) -> Tensor:
        scores = self.scores(images, classes)
        return ((1.0 + scores[..., 0] - scores[..., 1]) / 2.0).clamp(0.0, 1.0)

    @torch.no_grad()
    def ground(self, images: Tensor, classes: list[ClassSpec]) -> Tensor:
        """B x C x S x S published similarity maps on the evaluated image (see the module docstring)."""
        x = self._inputs(images)
        size = images.shape[-1], images.shape[-2]  # (W, H)
        patches = self.model.patch_embeddings(x, per_image=False)  # B x g x g x D
        text = [self.model.prompt_set_embedding(list(pos)) for pos, _ in self._prompt_sets(classes)]
        out = torch.zeros(len(images), len(classes), size[1], size[0])
        for b in range(len(images)):
            for c, emb in enumerate(text):
                _, smoothed = self.model.grid_similarity(patches[b], emb)
                full = self.model.similarity_to_image(smoothed, size[0], size[1], "nearest")
                inside = ~torch.isnan(full)
                out[b, c] = torch.where(inside, full, full[inside].min())
        return out

    def encoder(self) -> Encoder:
        resnet = copy.deepcopy(self.model.image.encoder.encoder)
        layers = nn.Sequential(resnet.conv1, resnet.bn1, resnet.relu, resnet.maxpool, resnet.layer1, resnet.layer2,
                               resnet.layer3)
        arch = self.model.image.arch
        return Encoder(UnitRange(ResNetTrunk(layers)), resnet_channels(arch), arch,
                       source=f"{self.name} image trunk ({arch} conv1..layer3, {self.weights} weights), "
                              "ImageNet normalisation undone to BioViL's [0, 1] input")

    def _checksums(self) -> dict[str, Any]:
        if self._digests is None:
            from baselines.biovil.model import VARIANTS, md5

            self._digests = {}
            image = self.files.get("image")
            if image is not None:
                published = VARIANTS[self.name].image_md5
                got = md5(image)
                self._digests["image_md5"] = got
                self._digests["image_md5_matches_published"] = got == published
            for role, path in self.files.items():
                self._digests[f"{role}_sha256"] = file_sha256(path)
        return self._digests

    def describe(self) -> dict[str, Any]:
        from baselines.biovil.model import VARIANTS
        from baselines.biovil.prompts import PUBLISHED_PROMPTS

        spec = VARIANTS[self.name]
        digests = self._checksums()
        text_cfg = self.model.text.config
        return {"name": self.name, "zoo": True, "family": "biovil", "source": "microsoft/hi-ml health_multimodal",
                "weights": self.weights, "random_weights": self.weights == RANDOM, "reduced": self.reduced,
                "repo": spec.repo, "revision": spec.revision,
                "checkpoint": str(self.files["image"]) if "image" in self.files else None,
                "checkpoint_sha256": digests.get("image_sha256"),
                "checkpoint_files": {k: str(v) for k, v in self.files.items()}, "checksums": digests,
                "architecture": {"image": self.model.image.arch, "multi_image": self.model.image.multi_image,
                                 "joint_feature_size": self.model.image.joint_feature_size,
                                 "text": {k: text_cfg.get(k) for k in ("hidden_size", "num_hidden_layers",
                                                                       "num_attention_heads", "projection_size")}},
                "image_size": self.image_size,
                "preprocessing": {"resize": self.model.resize, "center_crop": self.model.crop,
                                  "mean_std_normalisation": None},
                "tokenizer_vocab": str(self.model.tokenizer.vocab_file),
                "settings": sorted(self.settings), "zero_shot_rule": ZERO_SHOT_RULE, "zero_shot": ZERO_SHOT_TEXT,
                "prompts": "published hi-ml sets for: " + ", ".join(sorted(PUBLISHED_PROMPTS))
                           + "; every other class: the task's positive / negative prompts",
                "grounding": GROUNDING_TEXT}


def _cached_snapshot(variant: str) -> Path:
    """The variant's repo snapshot from the local Hugging Face cache, downloading it only when allowed."""
    from baselines.biovil.model import TEXT_FILES, VARIANTS

    spec = VARIANTS[variant]
    patterns = [spec.image_file, *TEXT_FILES]
    try:
        from huggingface_hub import snapshot_download
    except ImportError as exc:  # pragma: no cover - huggingface_hub ships with transformers
        raise BiovilWeightsUnavailable(f"huggingface_hub is needed to find {spec.repo}: {exc}") from None
    try:
        folder = Path(snapshot_download(spec.repo, revision=spec.revision, allow_patterns=patterns,
                                        local_files_only=not downloads_allowed()))
    except Exception as exc:  # noqa: BLE001 - not in the cache (or no network)
        raise BiovilWeightsUnavailable(
            f"{variant} weights ({spec.repo}@{spec.revision}: {spec.image_file}, config.json, pytorch_model.bin, "
            f"vocab.txt) are not in the local Hugging Face cache ({exc.__class__.__name__}). cxrbench does not "
            f"download them unless asked: {HOW_TO_ALLOW}, or pass --checkpoint FOLDER with those files.") from None
    if not (folder / spec.image_file).is_file():
        raise BiovilWeightsUnavailable(f"{folder}: the snapshot lacks {spec.image_file}")
    return folder


def load_biovil_adapter(variant: str = "biovil", checkpoint: Path | str | None = None,
                        text_encoder: str | None = None, image_size: int | None = None, seed: int = 0,
                        **_: Any) -> BiovilAdapter:
    """Registry loader (see the module docstring for the ``checkpoint`` forms)."""
    from baselines.biovil.model import REDUCED, VARIANTS, load_biovil, random_biovil
    from baselines.biovil.text import text_weights_file

    spec = VARIANTS[variant]
    if checkpoint is not None and str(checkpoint) in (RANDOM, RANDOM_REDUCED):
        if str(checkpoint) == RANDOM_REDUCED:
            model = random_biovil(variant, arch=REDUCED["arch"], text_config=REDUCED["text_config"], seed=seed,
                                  resize=REDUCED["resize"], crop=REDUCED["crop"])
        else:
            model = random_biovil(variant, seed=seed)
        return BiovilAdapter(model, variant, RANDOM, {}, image_size, reduced=str(checkpoint) == RANDOM_REDUCED)
    if checkpoint is None:
        folder = _cached_snapshot(variant)
        model = load_biovil(folder, variant)
        image_file, text_folder = folder / spec.image_file, folder
    else:
        path = Path(checkpoint)
        if path.is_dir():
            model = load_biovil(path, variant)
            from baselines.biovil.model import find_image_file

            image_file, text_folder = find_image_file(path, spec), path
        elif path.is_file():
            text_folder = Path(text_encoder) if text_encoder else path.parent
            model = load_biovil(variant=variant, image_file=path, text_folder=text_folder)
            image_file = path
        else:
            raise FileNotFoundError(f"--checkpoint {path} does not exist (give the {spec.repo} snapshot folder, the "
                                    f"image .pt with --text-encoder FOLDER, {RANDOM} or {RANDOM_REDUCED})")
    files = {"image": image_file, "text": text_weights_file(text_folder)}
    return BiovilAdapter(model, variant, "released", files, image_size)


def _load_biovil(checkpoint: Path | None = None, **options: Any) -> BiovilAdapter:
    return load_biovil_adapter("biovil", checkpoint, **options)


def _load_biovil_t(checkpoint: Path | None = None, **options: Any) -> BiovilAdapter:
    return load_biovil_adapter("biovil-t", checkpoint, **options)


ALL = frozenset({"zs", "ground", "ft", "seg"})
ENTRY = ModelEntry("biovil", "BioViL (microsoft/hi-ml): ResNet-50 + CXR-BERT, published pos-vs-neg prompt-set "
                   "cosine rule, native patch-text grounding; --checkpoint HF snapshot | image.pt + --text-encoder "
                   "| random | random-reduced", ALL, _load_biovil)
ENTRY_T = ModelEntry("biovil-t", "BioViL-T (microsoft/hi-ml): multi-image ResNet-50 encoder used without a prior "
                     "(as the published inference engine) + its CXR-BERT; same rules as biovil", ALL, _load_biovil_t)

__all__ = ["ENTRY", "ENTRY_T", "BiovilAdapter", "BiovilWeightsUnavailable", "GROUNDING_TEXT", "RANDOM",
           "RANDOM_REDUCED", "ZERO_SHOT_RULE", "load_biovil_adapter"]
