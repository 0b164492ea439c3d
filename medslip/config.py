"""Model configuration as a plain dataclass (loadable from YAML/JSON dicts)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

BACKBONES = ("resnet18", "resnet34", "resnet50")


@dataclass
class MeDSLIPConfig:
    """Hyper-parameters of the MeDSLIP module.

    Defaults are the released configuration (ResNet-50 up to layer3, 4 decoder layers of width 256
    with 4 heads, FFN 1024, dropout 0.1, 7 ProtoCL negatives, 768-d BERT-base books).
    """

    backbone: str = "resnet50"
    d_model: int = 256
    num_layers: int = 4
    num_heads: int = 4
    dim_feedforward: int = 1024
    dropout: float = 0.1
    num_negatives: int = 7
    text_width: int = 768
    num_classes: int = 2
    num_pathologies: int = 75
    num_anatomies: int = 51
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.backbone not in BACKBONES:
            raise ValueError(f"backbone must be one of {BACKBONES}, got {self.backbone!r}")
        if self.d_model % self.num_heads:
            raise ValueError(f"d_model ({self.d_model}) must be divisible by num_heads ({self.num_heads})")
        for name in ("d_model", "num_layers", "num_heads", "dim_feedforward", "text_width", "num_negatives"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")

    @property
    def backbone_channels(self) -> int:
        """C: channels after layer3 (half of the ResNet's final width)."""
        return 1024 if self.backbone == "resnet50" else 256

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "MeDSLIPConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown MeDSLIP config keys: {unknown}; known: {sorted(known)}")
        return cls(**data)

    @classmethod
    def from_official(cls, cfg: dict[str, Any], text_width: int = 768) -> "MeDSLIPConfig":
        """Translate the published YAML/JSON config (d_model, H, N, res_base_model, ...)."""
        return cls(
            backbone=cfg.get("res_base_model", "resnet50"),
            d_model=int(cfg.get("d_model", 256)),
            num_layers=int(cfg.get("N", 4)),
            num_heads=int(cfg.get("H", 4)),
            dropout=float(cfg.get("dropout", 0.1)),
            num_classes=int(cfg.get("attribute_set_size", 2)),
            num_pathologies=int(cfg.get("num_queries", 75)),
            text_width=text_width,
        )
