"""The ``gloria`` model adapter: the published GLoRIA (marshuang80/gloria @ 416466a) and its released weights.

``--checkpoint`` is the released Lightning ``chexpert_resnet50.ckpt`` (``cxrbench zoo list`` says where it comes
from; it is read without running any code from the file), ``random`` (random weights of the released architecture:
ResNet-50 + a Bio_ClinicalBERT-shaped tower; its tokenizer must be local) or ``random-reduced`` (a reduced random
model for tests: the tower's input resize 64 instead of 299, a 2-layer 64-wide BERT with a character vocabulary).
``--text-encoder`` names the tokenizer (Bio_ClinicalBERT from the local Hugging Face cache by default; the BERT
weights themselves are in the checkpoint).

Images: the harness's ImageNet-normalised images are re-normalised to GLoRIA's [-1, 1] ("half" normalisation);
the tower resizes them to 299 x 299 itself. (The published ``process_img`` pads to a square of 256 and centre-crops
224; the harness gives its own square image of ``--image-size``, default 224.)

- zero-shot (``zero_shot_rule``, recorded): each class's prompts (``prompt_source``: ``published``, the default,
  takes GLoRIA's CheXpert prompts as its README draws them for Atelectasis, Cardiomegaly, Consolidation, Edema and
  (Pleural) Effusion, and the task's positive prompts for other classes; ``task`` always takes the task's; Python
  ``prompt_source=...`` or ``CXRBENCH_GLORIA_PROMPTS``) are processed as
  ``process_text`` does; per prompt, (local + global) / 2, the local part with the published ``cap_lens`` (characters);
  per class, the max over its prompts. ``per-image`` (default) returns these scores: deterministic and independent of
  the batch; per class they are an increasing affine map of the published scores over any fixed set of images, so
  per-class AUC equals the published rule's over the whole evaluation set. ``published-batch`` applies the published
  standardisation of each class over the images of each call (the harness's evaluation batches), exactly what
  ``zero_shot_classification`` returns for those images. Set it with ``zero_shot_rule=...`` (Python) or
  ``CXRBENCH_GLORIA_ZS_RULE``.
- grounding: GLoRIA's word-to-region attention (``get_attn_maps``: its ``[CLS]`` and word positions, temperature
  temp1 = 4) of each class prompt over the image's 19 x 19 regions, averaged over the prompt's words and then over
  the class's prompts;
- encoder: the ResNet-50 up to layer3 (strides 2 .. 16) with the re-normalisation built in, for ft / seg.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from cxrbench.downloads import downloads_allowed
from cxrbench.metrics.grounding_postprocess import PublishedGrounding
from cxrbench.zoo.adapters import RANDOM_REDUCED, canonical_checkpoint
from cxrbench.models.base import ClassSpec, Encoder, ModelEntry, ResNetTrunk, file_sha256, resnet_channels

NAME = "gloria"
SOURCE = "marshuang80/gloria@416466af1036294301a872e4da169fefc137a192"
BIO_CLINICAL_BERT = "emilyalsentzer/Bio_ClinicalBERT"
RANDOM = "random"
RANDOM_SEED = 0
RULE_ENV = "CXRBENCH_GLORIA_ZS_RULE"
PROMPTS_ENV = "CXRBENCH_GLORIA_PROMPTS"
PROMPT_SOURCES = ("published", "task")
GROUNDING = ("word-to-region attention of get_attn_maps ([CLS] + word positions, temp1 4, softmax over words then "
             "x4 softmax over the 19x19 regions) of each class prompt, mean over its words, then over the prompts")


def _rule_text(rule: str) -> str:
    base = ("per prompt (local + global)/2 (local: published cap_lens = characters, [CLS] skipped, log max exp(5 r)); "
            "per class the max over its prompts; ")
    if rule == "per-image":
        return base + ("per-image: raw scores (deterministic; per-class AUC equals the published standardisation "
                       "over the whole evaluation set)")
    return base + "published-batch: each class standardised over the images of each evaluation batch (ddof 0)"


class _Renormalise(nn.Module):
    """ImageNet-normalised images -> GLoRIA's [-1, 1]."""

    def __init__(self) -> None:
        super().__init__()
        from medslip.augment import IMAGENET_MEAN, IMAGENET_STD

        std, mean = torch.tensor(IMAGENET_STD), torch.tensor(IMAGENET_MEAN)
        self.register_buffer("scale", (2 * std).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("shift", (2 * mean - 1).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        return x * self.scale + self.shift


class _GloriaTrunk(nn.Module):
    def __init__(self, layers: nn.Sequential) -> None:
        super().__init__()
        self.renorm = _Renormalise()
        self.trunk = ResNetTrunk(layers)

    def forward(self, x: Tensor) -> list[Tensor]:
        return self.trunk(self.renorm(x))


class GloriaAdapter:
    name = NAME
    #: gloria/utils/utils.py build_attention_images (the maps its training draws; GLoRIA publishes no grounding
    #: metric): 19 x 19 maps expanded x16 by pyramid_expand with sigma 20, min-max normalised
    published_grounding = {"published": PublishedGrounding("GLoRIA build_attention_images", normalise="min-max",
                                                           upsample="pyramid-expand", threshold=None, factor=16,
                                                           sigma=20.0)}
    settings = frozenset({"zs", "ground", "ft", "seg"})

    def __init__(self, model, tokenizer, weights: str, checkpoint: Path | None, image_size: int = 224,
                 zero_shot_rule: str = "per-image", tokenizer_name: str | None = None, read_mode: str | None = None,
                 prompt_source: str = "published"):
        from baselines.gloria.model import vocab_lookup
        from baselines.gloria.similarity import RULES

        if zero_shot_rule not in RULES:
            raise ValueError(f"GLoRIA zero-shot rule must be one of {', '.join(RULES)}, got {zero_shot_rule!r}")
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.lookup = vocab_lookup(tokenizer)
        self.weights, self.checkpoint, self.image_size = weights, checkpoint, int(image_size)
        self.zero_shot_rule = zero_shot_rule
        if prompt_source not in PROMPT_SOURCES:
            raise ValueError(f"GLoRIA prompt source must be one of {', '.join(PROMPT_SOURCES)}, got {prompt_source!r}")
        self.prompt_source = prompt_source
        self.tokenizer_name = tokenizer_name
        self.read_mode = read_mode
        self.renorm = _Renormalise()
        self._sha: str | None = None
        self._texts: dict[tuple[str, ...], dict[str, Any]] = {}

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def to(self, device: torch.device) -> "GloriaAdapter":
        self.model.to(device)
        self.renorm.to(device)
        self._texts.clear()
        return self

    # ------------------------------------------------------------- prompts
    def prompts(self, spec: ClassSpec) -> tuple[str, ...]:
        """The class's prompts: GLoRIA's published CheXpert prompts (the README's draw) for its five classes unless
        ``prompt_source`` is ``task``; else the task's positive prompts (or the description, or the label)."""
        from baselines.gloria.prompts import CHEXPERT_CLASS_PROMPTS, LABEL_TO_CHEXPERT, chexpert_class_prompts

        name = LABEL_TO_CHEXPERT.get(spec.label, spec.label)
        if self.prompt_source == "published" and name in CHEXPERT_CLASS_PROMPTS:
            return tuple(chexpert_class_prompts()[name])
        if spec.positive_prompts:
            return tuple(spec.positive_prompts)
        if spec.description:
            return (spec.description,)
        return (spec.label.replace("_", " ").lower(),)

    @torch.no_grad()
    def _encode(self, prompts: tuple[str, ...]) -> dict[str, Any]:
        from baselines.gloria.model import process_text
        from baselines.gloria.similarity import word_counts

        if prompts not in self._texts:
            tokens = process_text(prompts, self.tokenizer, self.model.config.word_num)
            out = self.model.encode_texts({k: tokens[k].to(self.device) for k in
                                           ("input_ids", "attention_mask", "token_type_ids")}, self.lookup)
            self._texts[prompts] = {"emb_l": out["emb_l"], "emb_g": out["emb_g"], "cap_lens": tokens["cap_lens"],
                                    "counts": word_counts(out["words"])}
        return self._texts[prompts]

    @torch.no_grad()
    def _images(self, images: Tensor) -> dict[str, Tensor]:
        return self.model.encode_images(self.renorm(images.to(self.device)))

    # ----------------------------------------------------------- inference
    @torch.no_grad()
    def zero_shot(self, images: Tensor, classes: list[ClassSpec]) -> Tensor:
        from baselines.gloria import similarity as S

        img = self._images(images)
        cols = []
        for spec in classes:
            text = self._encode(self.prompts(spec))
            sim = S.both_similarities(img["emb_l"], img["emb_g"], text["emb_l"], text["emb_g"], text["cap_lens"])
            cols.append(sim.max(1).values)
        return S.zero_shot(torch.stack(cols, 1), self.zero_shot_rule).float().cpu()

    @torch.no_grad()
    def ground(self, images: Tensor, classes: list[ClassSpec]) -> Tensor:
        from baselines.gloria.similarity import attention_fn

        img = self._images(images)
        batch = img["emb_l"].shape[0]
        out = []
        for spec in classes:
            text = self._encode(self.prompts(spec))
            maps = []
            for p, n in enumerate(text["counts"]):
                word = text["emb_l"][p, :, :n].unsqueeze(0).expand(batch, -1, -1).contiguous()
                _, attn = attention_fn(word, img["emb_l"], self.model.config.temp1)
                maps.append(attn.mean(1))
            out.append(torch.stack(maps).mean(0))
        return torch.stack(out, 1).float().cpu()

    def encoder(self) -> Encoder:
        layers = copy.deepcopy(self.model.img_encoder.trunk_layers())
        return Encoder(_GloriaTrunk(layers), resnet_channels("resnet50"), "resnet50",
                       source="gloria img_encoder.model (ResNet-50 conv1..layer3), [-1, 1] re-normalisation built in, "
                              "no 299 resize")

    def describe(self) -> dict[str, Any]:
        if self._sha is None and self.checkpoint is not None:
            self._sha = file_sha256(self.checkpoint)
        return {
            "name": NAME, "zoo": True, "source": SOURCE, "weights": self.weights,
            "random_weights": self.weights != "released",
            "checkpoint": str(self.checkpoint) if self.checkpoint else None, "checkpoint_sha256": self._sha,
            "checkpoint_read": self.read_mode, "config": self.model.config.to_dict(), "image_size": self.image_size,
            "tokenizer": self.tokenizer_name, "zero_shot_rule": self.zero_shot_rule,
            "rule": _rule_text(self.zero_shot_rule), "prompt_source": self.prompt_source,
            "prompts": ("GLoRIA's CheXpert prompts as the README draws them (generate_chexpert_class_prompts, 5 per "
                        "class, seed 6) for Atelectasis, Cardiomegaly, Consolidation, Edema, (Pleural) Effusion; the "
                        "task's positive prompts for other classes" if self.prompt_source == "published"
                        else "the task's positive prompts"),
            "grounding": GROUNDING, "preprocess": "ImageNet-normalised -> [-1, 1]; the tower resizes to "
            f"{self.model.config.resize} (bilinear, align_corners)", "settings": sorted(self.settings),
        }


def _tokenizer(name: str):
    from transformers import AutoTokenizer

    from medslip.hub import hub_offline
    from medslip.text import TextEncoderUnavailable

    local_only = not downloads_allowed()
    try:
        with hub_offline(local_only):
            return AutoTokenizer.from_pretrained(name, local_files_only=local_only)
    except (OSError, ValueError) as exc:
        raise TextEncoderUnavailable(f"GLoRIA tokenizer {name!r} is not available offline ({type(exc).__name__}); "
                                     "give a local Bio_ClinicalBERT folder with --text-encoder, or allow downloads "
                                     "with --allow-download") from exc


def load(checkpoint: Path | str | None = None, text_encoder: str | None = None, image_size: int | None = None,
         zero_shot_rule: str | None = None, prompt_source: str | None = None, **_: Any) -> GloriaAdapter:
    from baselines.gloria.checkpoint import load_released
    from baselines.gloria.model import BIO_CLINICAL_BERT as BERT_CONFIG
    from baselines.gloria.model import GLoRIA, GloriaConfig

    rule = zero_shot_rule or os.environ.get(RULE_ENV) or "per-image"
    source = prompt_source or os.environ.get(PROMPTS_ENV) or "published"
    if checkpoint is None:
        raise ValueError("gloria needs --checkpoint: the released chexpert_resnet50.ckpt (see `cxrbench zoo list`), "
                         f"or '{RANDOM}' (random weights of the released architecture) / '{RANDOM_REDUCED}' (a "
                         "reduced random model)")
    spec = str(canonical_checkpoint(checkpoint))
    if spec in (RANDOM, RANDOM_REDUCED):
        if spec == RANDOM:
            name = text_encoder or BIO_CLINICAL_BERT
            tokenizer, config = _tokenizer(name), GloriaConfig()
            config.bert["vocab_size"] = max(config.bert["vocab_size"], len(tokenizer))
        else:
            from medslip.text import tiny_text_encoder

            name = "tiny-random (character vocabulary)"
            tokenizer = tiny_text_encoder(width=16, layers=1, heads=1).tokenizer
            bert = dict(BERT_CONFIG, vocab_size=len(tokenizer), hidden_size=64, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=128)
            config = GloriaConfig(embedding_dim=64, bert=bert, resize=64)
        state = torch.random.get_rng_state()
        torch.manual_seed(RANDOM_SEED)
        try:
            model = GLoRIA(config)
        finally:
            torch.random.set_rng_state(state)
        return GloriaAdapter(model, tokenizer, spec, None, image_size or 224, rule, name, prompt_source=source)
    path = Path(spec)
    name = text_encoder or BIO_CLINICAL_BERT
    model, how = load_released(path)
    return GloriaAdapter(model, _tokenizer(name), "released", path, image_size or 224, rule, name, how, source)


ENTRY = ModelEntry(NAME, "the published GLoRIA (marshuang80/gloria): released chexpert_resnet50.ckpt + the "
                   "Bio_ClinicalBERT tokenizer, or --checkpoint random; (local+global)/2 max-over-prompts zero-shot "
                   "(per-image or published batch standardisation), word-to-region attention grounding",
                   frozenset({"zs", "ground", "ft", "seg"}), load)

__all__ = ["ENTRY", "GloriaAdapter", "load"]
