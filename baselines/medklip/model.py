"""MedKLIP as published: entity queries (a text encoder's [CLS] embeddings of the entity descriptions,
projected) decoded against ResNet patch features by a pre-norm DETR-style decoder; each entity gets two
logits (absent / present).

Parameter names and creation order are the published module's (``disease_embedding_layer``, ``cl_fc``,
``res_features.*``, ``res_l1``, ``res_l2``, ``decoder.layers.{i}.*``, ``decoder.norm``, ``classifier``), so
the released state dict loads strictly. The decoder layers are MeDSLIP's (:mod:`medslip.decoder`): MeDSLIP's
pathology stream is this same computation, and the published MedKLIP and MeDSLIP decoders share their
parameter names below ``decoder*.layers``. The query book is a non-persistent buffer: the released file does
not hold it (the published code encodes the description file at load time).

Differences from MeDSLIP: one stream (no ``mask_generator``: the patch MLP sees the whole feature), no
anatomy decoder, names without the ``_pathology`` suffix, a single contrastive head ``cl_fc`` (trained
against the anatomy book in pre-training, unused at inference).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from medslip.decoder import QueryDecoder, QueryDecoderLayer
from medslip.model import _init_weights, build_backbone
from medslip.vocab import OBSERVATIONS

#: The 75 entities of the published model, in query order (``original_class`` of its test scripts).
ENTITIES: tuple[str, ...] = OBSERVATIONS

#: The published CXR14 zero-shot mapping (``Sample_zero-shot_Classification_CXR14/test.py``): NIH class ->
#: entity. Fibrosis is scored by ``tail_abnorm_obs`` (it is rare in MIMIC-CXR and was folded into it),
#: pleural thickening by ``thicken``.
NIH_TO_ENTITY: dict[str, str] = {
    "Atelectasis": "atelectasis",
    "Cardiomegaly": "cardiomegaly",
    "Effusion": "effusion",
    "Infiltration": "infiltrate",
    "Mass": "mass",
    "Nodule": "nodule",
    "Pneumonia": "pneumonia",
    "Pneumothorax": "pneumothorax",
    "Consolidation": "consolidation",
    "Edema": "edema",
    "Emphysema": "emphysema",
    "Fibrosis": "tail_abnorm_obs",
    "Pleural_Thickening": "thicken",
    "Hernia": "hernia",
}

BACKBONES = ("resnet18", "resnet50")
#: How many decoder layers the published grounding averages (the last four).
GROUNDING_LAYERS = 4


def entity_index(name: str) -> int:
    try:
        return ENTITIES.index(name)
    except ValueError:
        raise KeyError(f"{name!r} is not a MedKLIP entity; entities: {', '.join(ENTITIES)}") from None


@dataclass
class MedKLIPConfig:
    """Hyper-parameters; the defaults are the released configuration (ResNet-50 to layer3, N 4, H 4,
    d_model 256, feed-forward 1024, dropout 0.1, 75 entities, 768-wide Bio_ClinicalBERT book)."""

    backbone: str = "resnet50"
    d_model: int = 256
    num_layers: int = 4
    num_heads: int = 4
    dim_feedforward: int = 1024
    dropout: float = 0.1
    text_width: int = 768
    num_classes: int = 2
    num_queries: int = 75

    def __post_init__(self) -> None:
        if self.backbone not in BACKBONES:
            raise ValueError(f"MedKLIP backbone must be one of {BACKBONES}, got {self.backbone!r}")
        if self.d_model % self.num_heads:
            raise ValueError(f"d_model ({self.d_model}) must be divisible by H ({self.num_heads})")

    @property
    def backbone_channels(self) -> int:
        """Channels after layer3 (half the ResNet's final width, ``resnet.fc.in_features / 2``)."""
        return 1024 if self.backbone == "resnet50" else 256

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_official(cls, cfg: dict[str, Any], text_width: int = 768) -> "MedKLIPConfig":
        """From the published YAML keys (``d_model``, ``H``, ``N``, ``res_base_model``, ``num_queries``, ...)."""
        return cls(backbone=cfg.get("res_base_model", "resnet50"), d_model=int(cfg.get("d_model", 256)),
                   num_layers=int(cfg.get("N", 4)), num_heads=int(cfg.get("H", 4)),
                   dropout=float(cfg.get("dropout", 0.1)), num_classes=int(cfg.get("attribute_set_size", 2)),
                   num_queries=int(cfg.get("num_queries", 75)), text_width=text_width)


class MedKLIP(nn.Module):
    """The published MedKLIP module (inference forward of its zero-shot and grounding scripts)."""

    def __init__(self, config: MedKLIPConfig | None = None, book: Tensor | None = None) -> None:
        super().__init__()
        self.config = config = config or MedKLIPConfig()
        d, width, channels = config.d_model, config.text_width, config.backbone_channels
        # creation order = the published module's, hence the same state-dict order
        self.disease_embedding_layer = nn.Linear(width, d)
        self.cl_fc = nn.Linear(d, width)
        self.res_features = build_backbone(config.backbone)
        self.res_l1 = nn.Linear(channels, channels)
        self.res_l2 = nn.Linear(channels, d)
        layer = QueryDecoderLayer(d, config.num_heads, config.dim_feedforward, config.dropout)
        self.decoder = QueryDecoder(layer, config.num_layers, nn.LayerNorm(d))
        self.dropout_feas = nn.Dropout(config.dropout)
        self.classifier = nn.Linear(d, config.num_classes)
        self.apply(_init_weights)
        self.register_buffer("book", torch.zeros(config.num_queries, width), persistent=False)
        if book is not None:
            self.set_book(book)

    def set_book(self, book: Tensor) -> None:
        """The entity book (Q x text_width): [CLS] embeddings of the entity descriptions."""
        book = torch.as_tensor(book)
        if book.ndim != 2 or book.shape[1] != self.config.text_width:
            raise ValueError(f"the MedKLIP book must be N x {self.config.text_width}, got {tuple(book.shape)}")
        self.book = book.detach().to(device=self.book.device, dtype=self.book.dtype).clone()

    def embed_queries(self, book: Tensor) -> Tensor:
        """Book rows (N x text_width) -> decoder queries (N x d)."""
        return self.disease_embedding_layer(book)

    def image_encoder(self, images: Tensor) -> Tensor:
        """Images (B x 3 x S x S) -> patch embeddings (B x L x d), L = (S/16)^2."""
        feats = self.res_features(images).flatten(2).transpose(1, 2)  # B x L x C
        return self.res_l2(F.relu(self.res_l1(feats)))

    def forward(self, images: Tensor, queries: Tensor | None = None, need_attention: bool = True) -> dict[str, Any]:
        """``logits`` (B x Q x 2), ``features`` (B x Q x d, decoder output) and ``attention`` (per decoder
        layer, B x Q x L, the head-averaged cross-attention). ``queries`` (Q' x d) replaces the entity queries
        (a class described in free text)."""
        patches = self.image_encoder(images)
        if queries is None:
            queries = self.embed_queries(self.book)
        batch = images.shape[0]
        features, maps = self.decoder(queries.unsqueeze(1).expand(-1, batch, -1), patches.transpose(0, 1),
                                      need_weights=need_attention)
        features = features.transpose(0, 1)
        logits = self.classifier(self.dropout_feas(features))
        return {"logits": logits, "features": features, "attention": maps}


def prob_present(logits: Tensor) -> Tensor:
    """The published zero-shot score: softmax over each entity's two logits, probability of index 1."""
    return logits.float().softmax(-1)[..., 1]


def grounding_maps(attention: list[Tensor], layers: int = GROUNDING_LAYERS) -> Tensor:
    """The published grounding: the cross-attention of the last ``layers`` decoder layers averaged, on the
    patch grid (B x Q x h x w)."""
    if not attention:
        raise ValueError("no attention maps (run the model with need_attention=True)")
    maps = torch.stack(attention[-layers:]).mean(0)
    side = int(round(maps.shape[-1] ** 0.5))
    if side * side != maps.shape[-1]:
        raise ValueError(f"{maps.shape[-1]} patches are not a square grid")
    return maps.reshape(*maps.shape[:2], side, side)


__all__ = ["ENTITIES", "GROUNDING_LAYERS", "NIH_TO_ENTITY", "MedKLIP", "MedKLIPConfig", "entity_index",
           "grounding_maps", "prob_present"]
