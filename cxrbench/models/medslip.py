"""The MeDSLIP model adapter: our checkpoints and the published ``.pth`` with its description file."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from cxrbench.metrics.grounding_postprocess import PublishedGrounding
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
    #: the published RSNA grounding script (medslip-spec.md, "Zero-shot grounding")
    published_grounding = {
        "published": PublishedGrounding("MeDSLIP grounding script", normalise="batch-max", upsample="repeat",
                                        threshold=0.0),
        "published-anatomy": PublishedGrounding("MeDSLIP grounding script, anatomy product", normalise="batch-max",
                                                upsample="repeat", threshold=0.01, anatomy_product=True),
    }

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

    def _description_row(self, description: str) -> Tensor:
        book = self.model.pathology_book
        if description not in self._description_cache:
            self._description_cache[description] = self.text_encoder().encode([description])[0].to(book)
        return self._description_cache[description].to(book)

    def _decode(self, images: Tensor, classes: list[ClassSpec], need_attention: bool) -> dict[str, Tensor]:
        """Per-class probabilities (B x C) and, with ``need_attention``, pathology maps (B x C x L, last 4 layers)
        and the anatomy attention averaged over its queries (B x L).

        The decoder's self-attention mixes its queries, so a class's score depends on the query set. Classes are
        therefore decoded in the context the model was trained with (protocol v2): vocabulary classes with the
        whole observation book, and each class outside the vocabulary with the book plus its own description
        query (read out at the appended row). Adding a description class never changes another class's score."""
        for c in classes:
            if c.query is None and not c.description:
                raise ValueError(f"class {c.label!r} has neither a vocabulary query nor a description")
        model = self.model
        x_p, x_a = model.encode_image(images.to(self.device))
        book = model.pathology_book
        probs = [None] * len(classes)
        maps = [None] * len(classes)
        anatomy = None

        def run(queries: Tensor | None) -> tuple[Tensor, list[Tensor], list[Tensor]]:
            out = model.decode(x_p, x_a, queries, need_attention)
            logits = model.classifier_pathology(model.dropout_feas_pathology(out["features_pathology"]))
            return logits.float().softmax(-1)[..., 1], out["attn_pathology"], out.get("attn_anatomy")

        vocab = [i for i, c in enumerate(classes) if c.query is not None]
        passes: list[tuple[Tensor | None, list[tuple[int, int]]]] = []
        if vocab:
            passes.append((None, [(i, observation_index(classes[i].query)) for i in vocab]))
        described: dict[str, list[int]] = {}
        for i, c in enumerate(classes):
            if c.query is None:
                described.setdefault(c.description, []).append(i)
        for description, members in described.items():
            rows = torch.cat([book, self._description_row(description)[None]])
            passes.append((model.embed_queries(rows), [(i, book.shape[0]) for i in members]))
        for queries, picks in passes:
            p, attn_p, attn_a = run(queries)
            for i, q in picks:
                probs[i] = p[:, q]
                if need_attention:
                    maps[i] = torch.stack(attn_p[-4:]).mean(0)[:, q]
            if need_attention and anatomy is None and attn_a is not None:
                anatomy = torch.stack(attn_a[-4:]).mean(0).mean(1)
        out = {"probs": torch.stack(probs, 1)}
        if need_attention:
            out["maps"] = torch.stack(maps, 1)
            out["anatomy"] = anatomy
        return out

    @staticmethod
    def _grid(maps: Tensor) -> Tensor:
        side = int(round(maps.shape[-1] ** 0.5))
        return maps.reshape(maps.shape[0], maps.shape[1], side, side).float().cpu()

    # ----------------------------------------------------------- inference
    @torch.no_grad()
    def zero_shot(self, images: Tensor, classes: list[ClassSpec]) -> Tensor:
        return self._decode(images, classes, need_attention=False)["probs"].cpu()

    @torch.no_grad()
    def ground(self, images: Tensor, classes: list[ClassSpec]) -> Tensor:
        return self._grid(self._decode(images, classes, need_attention=True)["maps"])

    @torch.no_grad()
    def ground_anatomy_product(self, images: Tensor, classes: list[ClassSpec]) -> Tensor:
        """The published optional grounding map: the pathology attention (last 4 layers) times the anatomy
        decoder's attention averaged over its queries (last 4 layers), B x C x h x w."""
        out = self._decode(images, classes, need_attention=True)
        if out["anatomy"] is None:
            raise ValueError(f"{self.name} has no anatomy stream: 'published-anatomy' grounding does not apply")
        return self._grid(out["maps"] * out["anatomy"][:, None])

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

        out = self.model(images.to(self.device), need_attention=True)  # the whole book: every query's features
        grid = self._grid
        feats = out["features_pathology"]
        result: dict[str, dict[str, Any]] = {"pathology": {
            "role": "what", "features": feats.flatten(1).float().cpu(),
            "features_description": "pathology decoder outputs of all observation queries (concatenated)",
            "class_maps": self.ground(images, classes),  # decoded in the trained query context
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
