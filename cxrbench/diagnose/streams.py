"""What a model offers the diagnostics: class scores, and per stream features, class maps, anatomy queries.

An adapter may define the optional method ``streams(images, classes) -> {stream name: dict}``; each dict has
``role`` ("what": the stream meant to carry the finding; "where": the stream meant to carry anatomy; "both":
a single stream that carries everything) and any of ``features`` (B x D frozen features), ``class_maps``
(B x C x h x w, one map per class), ``anatomy_scores`` (B x A), ``anatomy_maps`` (B x A x h x w) with
``anatomy_names`` (A names in the MeDSLIP anatomy vocabulary). Adapters without it get one stream, ``image``
(role "both"): class maps from ``ground`` (when the model grounds) and features from the exported encoder
(global average of its last feature map, when the model exports one).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from cxrbench.models.base import ClassSpec


class _EncoderFeatures:
    """Global-average-pooled last feature map of ``adapter.encoder()`` (built once)."""

    def __init__(self, adapter) -> None:
        self.trunk = adapter.encoder().trunk.eval()
        device = getattr(adapter, "device", None)
        if device is not None:
            self.trunk.to(device)
        self.device = device

    @torch.no_grad()
    def __call__(self, images: Tensor) -> Tensor:
        x = images.to(self.device) if self.device is not None else images
        return self.trunk(x)[-1].float().mean(dim=(2, 3)).cpu()


class StreamSource:
    """Calls the adapter's ``streams`` or the generic fallback; ``capabilities`` says what exists."""

    def __init__(self, adapter, settings: frozenset[str]) -> None:
        self.adapter = adapter
        self.settings = settings
        self.native = callable(getattr(adapter, "streams", None))
        self.encoder_features = None
        self.fallback_note = None
        if not self.native:
            notes = []
            if "ft" in settings or "seg" in settings:
                try:
                    self.encoder_features = _EncoderFeatures(adapter)
                    notes.append("features: global average of the exported encoder's last feature map")
                except Exception as err:  # an adapter whose encoder is unavailable for this checkpoint
                    notes.append(f"no features ({type(err).__name__}: {err})")
            self.fallback_note = "; ".join(notes) or None

    def __call__(self, images: Tensor, classes: list[ClassSpec]) -> dict[str, dict[str, Any]]:
        if self.native:
            return self.adapter.streams(images, classes)
        out: dict[str, Any] = {"role": "both", "features_description": self.fallback_note or ""}
        if "ground" in self.settings:
            out["class_maps"] = self.adapter.ground(images, classes).float().cpu()
            out["maps_description"] = "the adapter's grounding maps"
        if self.encoder_features is not None:
            out["features"] = self.encoder_features(images)
        return {"image": out}


__all__ = ["StreamSource"]
