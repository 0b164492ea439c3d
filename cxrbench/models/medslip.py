"""The MeDSLIP model adapter: our checkpoints and the published ``.pth`` with its description file."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from cxrbench.models.base import (ClassSpec, Encoder, ModelEntry, ResNetTrunk, downloads_allowed, file_sha256,
                                  resnet_channels)
from medslip.model import MeDSLIP
from medslip.vocab import observation_index


class MedslipAdapter:
    """Zero-shot classification from the pathology stream, grounding from its cross-attention.

    - classification: softmax(logits)[present] of the observation query of each class; a class
      with a ``description`` instead gets a new query: the description encoded by the model's
      text encoder and projected by ``pathology_embedding_layer``;
    - grounding: the pathology decoder's cross-attention for the class query, averaged over the
      last (up to) 4 layers, on the patch grid;
    - encoder: ``res_features`` (conv1 .. layer3) for fine-tuning and segmentation.
    """

    name = "medslip"
    settings = frozenset({"zs", "ground", "ft", "seg"})

    def __init__(self, model: MeDSLIP, checkpoint: str | Path | None, image_size: int = 224,
                 text_encoder: str | None = None, source: str = "medslip-checkpoint",
                 extra: dict[str, Any] | None = None) -> None:
        self.model = model.eval()
        self.checkpoint = Path(checkpoint) if checkpoint else None
        self.image_size = image_size
        self.text_encoder_name = text_encoder
        self.source = source
        self.extra = extra or {}
        self._sha = None
        self._text_encoder_obj = None
        self._description_cache: dict[str, Tensor] = {}

    # ----------------------------------------------------------- construction
    @classmethod
    def from_checkpoint(cls, path: str | Path, image_size: int | None = None,
                        description_file: str | Path | None = None, text_encoder: str | None = None) -> "MedslipAdapter":
        """Our checkpoint folder, or a published ``.pth`` (then ``description_file`` + ``text_encoder``)."""
        from medslip.checkpoint import load_checkpoint, load_published, read_checkpoint_meta

        path = Path(path)
        if path.suffix in (".pth", ".pt", ".bin"):
            from medslip.books import anatomy_texts, encode_books, load_pathology_book, pathology_texts
            from medslip.text import load_text_encoder

            if text_encoder is None:
                raise ValueError("a published .pth checkpoint needs --text-encoder (e.g. the local "
                                 "Bio_ClinicalBERT folder) and normally --description-file")
            encoder = load_text_encoder(text_encoder, max_length=64, allow_download=downloads_allowed())
            texts = load_pathology_book(description_file) if description_file else pathology_texts()
            book_p, book_a = encode_books(encoder, texts, anatomy_texts())
            model = load_published(path, book_p, book_a)
            adapter = cls(model, path, image_size or 224, text_encoder, source="published-pth",
                          extra={"description_file": str(description_file) if description_file else None})
            adapter._text_encoder_obj = encoder
            return adapter
        meta = read_checkpoint_meta(path)
        size = image_size or int(meta.get("extra", {}).get("config", {}).get("data", {}).get("image_size", 224))
        return cls(load_checkpoint(path), path, size, meta.get("text_encoder"))

    def to(self, device: torch.device) -> "MedslipAdapter":
        self.model.to(device)
        return self

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    # ------------------------------------------------------------- queries
    def text_encoder(self):
        """The model's own text encoder (loaded once), for classes given as free text."""
        from medslip.text import load_text_encoder

        if self._text_encoder_obj is None:
            if self.text_encoder_name is None:
                raise ValueError("this checkpoint records no text encoder; a class described in free text "
                                 "needs one (pass text_encoder)")
            self._text_encoder_obj = load_text_encoder(self.text_encoder_name, max_length=64,
                                                       allow_download=downloads_allowed())
        return self._text_encoder_obj

    def _queries(self, classes: list[ClassSpec]) -> tuple[Tensor | None, list[int]]:
        """Custom query matrix (when a class needs one) and per-class query indices."""
        if all(c.query is not None for c in classes):
            return None, [observation_index(c.query) for c in classes]
        book = self.model.pathology_book
        rows, index = [], []
        for c in classes:
            if c.query is not None:
                rows.append(book[observation_index(c.query)])
            else:
                if not c.description:
                    raise ValueError(f"class {c.label!r} has neither a vocabulary query nor a description")
                if c.description not in self._description_cache:
                    encoded = self.text_encoder().encode([c.description])[0]
                    self._description_cache[c.description] = encoded.to(book)
                rows.append(self._description_cache[c.description])
            index.append(len(rows) - 1)
        return self.model.embed_queries(torch.stack(rows)), index

    # ----------------------------------------------------------- inference
    @torch.no_grad()
    def zero_shot(self, images: Tensor, classes: list[ClassSpec]) -> Tensor:
        queries, index = self._queries(classes)
        out = self.model(images.to(self.device), need_attention=False, pathology_queries=queries)
        probs = out["logits_pathology"].float().softmax(-1)[..., 1]
        return probs[:, index].cpu()

    @torch.no_grad()
    def ground(self, images: Tensor, classes: list[ClassSpec]) -> Tensor:
        queries, index = self._queries(classes)
        out = self.model(images.to(self.device), need_attention=True, pathology_queries=queries)
        maps = torch.stack(out["attn_pathology"][-4:]).mean(0)[:, index]  # B x C x L
        side = int(round(maps.shape[-1] ** 0.5))
        return maps.reshape(maps.shape[0], maps.shape[1], side, side).float().cpu()

    def encoder(self) -> Encoder:
        arch = self.model.config.backbone
        return Encoder(ResNetTrunk(copy.deepcopy(self.model.res_features)), resnet_channels(arch), arch,
                       source=f"medslip res_features ({arch} conv1..layer3)")

    def describe(self) -> dict[str, Any]:
        if self._sha is None and self.checkpoint is not None:
            self._sha = file_sha256(self.checkpoint)
        return {"name": self.name, "source": self.source, "checkpoint": str(self.checkpoint) if self.checkpoint else None,
                "checkpoint_sha256": self._sha, "config": self.model.config.to_dict(),
                "image_size": self.image_size, "text_encoder": self.text_encoder_name, **self.extra}

    # ------------------------------------------------------- per-stream outputs (cxrbench diagnose)
    @torch.no_grad()
    def streams(self, images: Tensor, classes: list[ClassSpec]) -> dict[str, dict[str, Any]]:
        """Per-stream outputs for ``cxrbench diagnose`` (one forward pass; nothing else uses it).

        ``pathology`` (role "what"): features = the pathology decoder's outputs of all observation queries,
        concatenated (B x P*d, before feature dropout); ``class_maps`` = the class queries' cross-attention
        (B x C x h x w, as :meth:`ground`). ``anatomy`` (role "where", absent for a single-stream model):
        features = the anatomy decoder's outputs (B x A*d); ``anatomy_scores`` = softmax(logits)[present] of
        the anatomy queries (B x A); ``anatomy_maps`` = their cross-attention (B x A x h x w), in
        ``medslip.vocab.ANATOMIES`` order (``anatomy_names``).
        """
        from medslip.vocab import ANATOMIES

        queries, index = self._queries(classes)
        out = self.model(images.to(self.device), need_attention=True, pathology_queries=queries)

        def grid(maps: Tensor) -> Tensor:
            side = int(round(maps.shape[-1] ** 0.5))
            return maps.reshape(maps.shape[0], maps.shape[1], side, side).float().cpu()

        feats = out["features_pathology"]
        if queries is not None:  # custom queries replace the book: the features are of the book queries
            feats = self.model(images.to(self.device), need_attention=False)["features_pathology"]
        result: dict[str, dict[str, Any]] = {"pathology": {
            "role": "what", "features": feats.flatten(1).float().cpu(),
            "features_description": "pathology decoder outputs of all observation queries (concatenated)",
            "class_maps": grid(torch.stack(out["attn_pathology"][-4:]).mean(0)[:, index]),
            "maps_description": "class-query cross-attention, mean of the last (up to) 4 layers"}}
        if out.get("features_anatomy") is not None and out.get("attn_anatomy"):
            result["anatomy"] = {
                "role": "where", "features": out["features_anatomy"].flatten(1).float().cpu(),
                "features_description": "anatomy decoder outputs of all anatomy queries (concatenated)",
                "anatomy_scores": out["logits_anatomy"].float().softmax(-1)[..., 1].cpu(),
                "anatomy_maps": grid(torch.stack(out["attn_anatomy"][-4:]).mean(0)),
                "anatomy_names": tuple(ANATOMIES),
                "maps_description": "anatomy-query cross-attention, mean of the last (up to) 4 layers"}
        return result


def load(checkpoint: Path | None = None, description_file: Path | None = None, text_encoder: str | None = None,
         image_size: int | None = None, progress: bool = True, **_: Any) -> MedslipAdapter:
    """The adapter of ``checkpoint``, or of the demo checkpoint (trained first when absent)."""
    from cxrbench.train import demo_or_train

    path = checkpoint or demo_or_train("medslip", "medslip.json", progress=progress)
    return MedslipAdapter.from_checkpoint(path, image_size=image_size, description_file=description_file,
                                          text_encoder=text_encoder)


ENTRY = ModelEntry("medslip", "MeDSLIP (ours or the published .pth with its description file)",
                   frozenset({"zs", "ground", "ft", "seg"}), load)

__all__ = ["ENTRY", "MedslipAdapter", "load"]
