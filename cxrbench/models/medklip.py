"""The ``medklip`` model adapter: the published MedKLIP (MediaBrain-SJTU/MedKLIP) and its released weights.

``--checkpoint`` is the released ``checkpoint_final.pth`` (``cxrbench zoo list`` says where it comes from), or
``random`` (random weights of the released architecture) / ``random-reduced`` (a reduced ResNet-18 model, for
tests; ``random:BACKBONE`` picks another trunk): the record's ``weights`` says which. The query book is built
from ``--description-file`` (the entity
description JSON the checkpoint was trained with, published as ``observation explanation.json``; without it
this project's own descriptions are used and the record says so) and ``--text-encoder`` (Bio_ClinicalBERT for
the released file, from the local Hugging Face cache; ``tiny-random`` by default for random weights), and cached
under the fingerprint of file and encoder.

- zero-shot: the published rule. All 75 entity queries are decoded together (the decoder's self-attention
  couples them, so the set is never changed), softmax over each entity's two logits, P(present); an NIH class
  is scored by its entity of the published CXR14 mapping; a class outside the vocabulary is described in free
  text: its description's [CLS] embedding, projected by ``disease_embedding_layer``, is decoded as a 76th query
  after the 75 entity queries;
- grounding: the cross-attention of the last four decoder layers, averaged over heads and layers, on the patch
  grid (the published RSNA grounding; it then repeats each patch 16x16 and thresholds at 0.008, which the
  harness replaces by its own task definition, see ``grounding_postprocess_published`` in the record);
- encoder: ``res_features`` (conv1 .. layer3) for fine-tuning and segmentation.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from cxrbench.downloads import downloads_allowed
from cxrbench.metrics.grounding_postprocess import PublishedGrounding
from cxrbench.zoo.adapters import RANDOM_REDUCED, canonical_checkpoint
from cxrbench.models.base import ClassSpec, Encoder, ModelEntry, ResNetTrunk, file_sha256, resnet_channels

NAME = "medklip"
SOURCE = "MediaBrain-SJTU/MedKLIP"
BIO_CLINICAL_BERT = "emilyalsentzer/Bio_ClinicalBERT"
RANDOM = "random"
#: Seed of random weights (every load of ``random`` gives the same model).
RANDOM_SEED = 0
RULE = ("softmax over each entity's two logits, P(present) (index 1), all 75 entity queries decoded together; "
        "NIH classes through the published CXR14 entity mapping (Fibrosis -> tail_abnorm_obs, "
        "Pleural_Thickening -> thicken); a class outside the vocabulary: its description's [CLS] embedding "
        "as a 76th query")
GROUNDING = ("decoder cross-attention (head-averaged) of the entity query, mean of the last 4 layers, on the "
             "16-px patch grid")
POSTPROCESS = ("published RSNA script: 14x14 map repeated 16x16 (nearest) to 224 px, binarised at 0.008 for "
               "IoU / Dice, pointing game on the arg-max")


class MedKLIPAdapter:
    name = NAME
    settings = frozenset({"zs", "ground", "ft", "seg"})
    #: Sample_Zero-Shot_Grounding_RSNA/test.py: raw attention, patches repeated, ``score_cal`` binarises at 0.008
    published_grounding = {"published": PublishedGrounding("MedKLIP RSNA grounding script (score_cal)",
                                                           normalise="none", upsample="repeat", threshold=0.008)}

    def __init__(self, model, text_encoder, weights: str, checkpoint: Path | None, image_size: int = 224,
                 description_file: Path | None = None, book_fingerprint: str | None = None) -> None:
        self.model = model.eval()
        self.text_encoder = text_encoder
        self.weights = weights
        self.checkpoint = checkpoint
        self.image_size = int(image_size)
        self.description_file = description_file
        self.book_fingerprint = book_fingerprint
        self._sha: str | None = None
        self._extra_queries: dict[str, Tensor] = {}

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def to(self, device: torch.device) -> "MedKLIPAdapter":
        self.model.to(device)
        return self

    # ------------------------------------------------------------- queries
    def _entity(self, spec: ClassSpec) -> int | None:
        from baselines.medklip.model import ENTITIES, NIH_TO_ENTITY

        if spec.query is not None and spec.query in ENTITIES:
            return ENTITIES.index(spec.query)
        if spec.label in NIH_TO_ENTITY:
            return ENTITIES.index(NIH_TO_ENTITY[spec.label])
        if spec.description:
            return None
        raise ValueError(f"class {spec.label!r}: {spec.query!r} is not a MedKLIP entity and the class has no "
                         "description to make a query from")

    def _description_query(self, text: str) -> Tensor:
        from baselines.medklip.book import MAX_LENGTH

        if text not in self._extra_queries:
            if self.text_encoder is None:
                raise ValueError("a class described in free text needs the text encoder (pass --text-encoder)")
            self._extra_queries[text] = self.text_encoder.encode([text], max_length=MAX_LENGTH)[0]
        return self._extra_queries[text].to(self.model.book)

    @torch.no_grad()
    def _outputs(self, images: Tensor, classes: list[ClassSpec], need_attention: bool):
        """Per class: (logits B x 2, maps B x h x w or None)."""
        from baselines.medklip.model import grounding_maps

        images = images.to(self.device)
        index = [self._entity(c) for c in classes]
        results: list[tuple[Tensor, Tensor | None]] = [None] * len(classes)  # type: ignore[list-item]
        if any(i is not None for i in index):
            out = self.model(images, need_attention=need_attention)
            maps = grounding_maps(out["attention"]) if need_attention else None
            for c, i in enumerate(index):
                if i is not None:
                    results[c] = (out["logits"][:, i], maps[:, i] if maps is not None else None)
        for c, i in enumerate(index):
            if i is None:
                book = torch.cat([self.model.book, self._description_query(classes[c].description)[None]])
                out = self.model(images, queries=self.model.embed_queries(book), need_attention=need_attention)
                maps = grounding_maps(out["attention"])[:, -1] if need_attention else None
                results[c] = (out["logits"][:, -1], maps)
        return results

    def zero_shot(self, images: Tensor, classes: list[ClassSpec]) -> Tensor:
        from baselines.medklip.model import prob_present

        outs = self._outputs(images, classes, need_attention=False)
        return torch.stack([prob_present(logits) for logits, _ in outs], 1).cpu()

    def ground(self, images: Tensor, classes: list[ClassSpec]) -> Tensor:
        outs = self._outputs(images, classes, need_attention=True)
        return torch.stack([maps for _, maps in outs], 1).float().cpu()

    def encoder(self) -> Encoder:
        arch = self.model.config.backbone
        return Encoder(ResNetTrunk(copy.deepcopy(self.model.res_features)), resnet_channels(arch), arch,
                       source=f"medklip res_features ({arch} conv1..layer3)")

    def describe(self) -> dict[str, Any]:
        if self._sha is None and self.checkpoint is not None:
            self._sha = file_sha256(self.checkpoint)
        desc = self.description_file
        return {
            "name": NAME, "zoo": True, "source": SOURCE, "weights": self.weights,
            "random_weights": self.weights == RANDOM,
            "checkpoint": str(self.checkpoint) if self.checkpoint else None, "checkpoint_sha256": self._sha,
            "config": self.model.config.to_dict(), "image_size": self.image_size,
            "text_encoder": getattr(self.text_encoder, "identity", None),
            "description_file": str(desc) if desc else None,
            "description_file_sha256": file_sha256(desc) if desc else None,
            "book": ("the description file" if desc else
                     "this project's own entity descriptions (medslip.books), NOT the file the released "
                     "checkpoint was trained with"),
            "book_fingerprint": self.book_fingerprint,
            "rule": RULE, "grounding": GROUNDING, "grounding_postprocess_published": POSTPROCESS,
            "settings": sorted(self.settings),
        }


def _book_cache() -> Path:
    from cxrbench.paths import cache_dir

    return cache_dir() / "medklip-books"


def load(checkpoint: Path | str | None = None, description_file: Path | None = None, text_encoder: str | None = None,
         image_size: int | None = None, **_: Any) -> MedKLIPAdapter:
    from baselines.medklip.book import encode_book, read_descriptions
    from baselines.medklip.checkpoint import load_released
    from baselines.medklip.model import MedKLIP, MedKLIPConfig
    from medslip.books import pathology_texts
    from medslip.text import TINY_RANDOM, load_text_encoder

    if checkpoint is None:
        raise ValueError("medklip needs --checkpoint: the released checkpoint_final.pth (see `cxrbench zoo list`), "
                         f"or '{RANDOM}' (random weights of the released architecture) / '{RANDOM_REDUCED}' (a "
                         f"reduced ResNet-18 model) / '{RANDOM}:BACKBONE'")
    spec = str(canonical_checkpoint(checkpoint))
    if spec == RANDOM_REDUCED:
        spec = f"{RANDOM}:resnet18"
    random_weights = spec == RANDOM or spec.startswith(RANDOM + ":")
    if text_encoder:
        name = text_encoder
    elif random_weights:  # the released architecture has a 768-wide book; the reduced model a 64-wide one
        name = TINY_RANDOM if ":" in spec else f"{TINY_RANDOM}(width=768,layers=1,heads=12,seed=0)"
    else:
        name = BIO_CLINICAL_BERT
    encoder = load_text_encoder(name, max_length=64, allow_download=downloads_allowed())
    description_file = Path(description_file) if description_file else None
    texts = read_descriptions(description_file) if description_file else pathology_texts()
    book, fingerprint = encode_book(encoder, texts, cache_dir=_book_cache())
    if random_weights:
        backbone = spec.split(":", 1)[1] if ":" in spec else "resnet50"
        state = torch.random.get_rng_state()
        torch.manual_seed(RANDOM_SEED)
        try:
            model = MedKLIP(MedKLIPConfig(backbone=backbone, text_width=encoder.width), book)
        finally:
            torch.random.set_rng_state(state)
        return MedKLIPAdapter(model, encoder, RANDOM, None, image_size or 224, description_file, fingerprint)
    path = Path(spec)
    model = load_released(path, book)
    return MedKLIPAdapter(model, encoder, "released", path, image_size or 224, description_file, fingerprint)


ENTRY = ModelEntry(NAME, "the published MedKLIP (MediaBrain-SJTU/MedKLIP): released checkpoint_final.pth + entity "
                   "description file + Bio_ClinicalBERT, or --checkpoint random; P(present) zero-shot, last-4-layer "
                   "cross-attention grounding", frozenset({"zs", "ground", "ft", "seg"}), load)

__all__ = ["ENTRY", "MedKLIPAdapter", "load"]
