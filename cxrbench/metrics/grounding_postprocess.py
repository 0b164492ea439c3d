"""Each model's published grounding post-processing (``--grounding-postprocess published``), as data.

The harness's grounding task has one definition for every model (``cxrbench/tasks/ground.py``: bilinear
upsampling, per-map min-max, threshold chosen on validation). Published papers score their maps with their own
post-processing, so reproducing a published number needs that instead. An adapter declares its rules in
``published_grounding`` (``{"published": rule, ...}``); a model that declares none is refused.

A rule says how the model's patch-grid map (``ground``, or ``ground_anatomy_product`` for MeDSLIP's optional
product) becomes an image-size map, and how that map is binarised:

- ``normalise``: ``"batch-max"`` divides every map by the maximum over its evaluation batch (MeDSLIP), ``"none"``
  keeps the values (MedKLIP's raw attention, BioViL's cosine), ``"min-max"`` rescales each map to [0, 1] (GLoRIA's
  drawing code).
- ``upsample``: ``"repeat"`` repeats each patch (nearest, exact multiple only), ``"pyramid-expand"`` is
  scikit-image's ``pyramid_expand`` (order-1 resize by an integer factor, then a Gaussian of ``sigma`` pixels),
  then an antialiased bilinear resize to the evaluated size; ``"as-given"`` means ``ground`` already returns
  the published image-size map.
- ``threshold``: binarise as ``map > threshold`` on the maps as given; ``None`` when the model publishes no
  binarisation: IoU / Dice then use the protocol's choice (min-max normalised maps, threshold chosen on
  validation). The pointing game never needs a threshold.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from cxrbench.metrics.grounding import minmax_normalise

NORMALISE = ("batch-max", "none", "min-max")
UPSAMPLE = ("repeat", "pyramid-expand", "as-given")


@dataclass(frozen=True)
class PublishedGrounding:
    """One model's published grounding post-processing."""

    source: str
    normalise: str
    upsample: str
    threshold: float | None
    anatomy_product: bool = False
    factor: int = 16
    sigma: float = 0.0

    def __post_init__(self) -> None:
        if self.normalise not in NORMALISE:
            raise ValueError(f"normalise must be one of {', '.join(NORMALISE)}, got {self.normalise!r}")
        if self.upsample not in UPSAMPLE:
            raise ValueError(f"upsample must be one of {', '.join(UPSAMPLE)}, got {self.upsample!r}")

    def describe(self) -> str:
        maps = {"batch-max": "map / maximum over the evaluation batch", "none": "map values as given",
                "min-max": "per-map min-max"}[self.normalise]
        up = {"repeat": "each patch repeated (nearest)",
              "pyramid-expand": f"skimage pyramid_expand (x{self.factor}, sigma {self.sigma:g} px), then bilinear "
                                "to the evaluated size",
              "as-given": "the model's own image-size map"}[self.upsample]
        binar = (f"binarised at > {self.threshold:g}" if self.threshold is not None else
                 "no published binarisation: IoU / Dice at the protocol's threshold (min-max, chosen on validation)")
        product = "pathology x anatomy attention; " if self.anatomy_product else ""
        return f"{self.source}: {product}{up}; {maps}; {binar}"

    def apply(self, grid: Tensor, size: int) -> Tensor:
        """B x h x w maps of one class (one evaluation batch) -> B x size x size published maps."""
        grid = grid.float()
        if self.upsample == "as-given":
            if tuple(grid.shape[-2:]) != (size, size):
                raise ValueError(f"the published maps of this model are image-size: expected {size} x {size}, "
                                 f"got {tuple(grid.shape[-2:])}")
            up = grid
        elif self.upsample == "repeat":
            gh, gw = grid.shape[-2:]
            if size % gh or size % gw:
                raise ValueError(f"published grounding repeats each patch: image size {size} is not a multiple of "
                                 f"the {gh} x {gw} grid")
            up = grid.repeat_interleave(size // gh, dim=-2).repeat_interleave(size // gw, dim=-1)
        else:
            up = _pyramid_expand(grid, self.factor, self.sigma)
            up = F.interpolate(up[:, None], size=(size, size), mode="bilinear", align_corners=False,
                               antialias=True)[:, 0]
        if self.normalise == "batch-max":
            top = up.max()
            up = up / top if top > 0 else up
        elif self.normalise == "min-max":
            up = torch.from_numpy(minmax_normalise(up))  # the protocol's own per-map normalisation
        return up


def _pyramid_expand(grid: Tensor, factor: int, sigma: float) -> Tensor:
    """``skimage.transform.pyramid_expand(map, upscale=factor, sigma=sigma)`` of each map (the library's own)."""
    from skimage.transform import pyramid_expand  # a declared dependency; imported only when a rule needs it
    maps = grid.detach().cpu().double().numpy()
    out = [pyramid_expand(m, upscale=factor, sigma=sigma, order=1, mode="reflect") for m in maps]
    return torch.from_numpy(np.stack(out)).float() if out else torch.zeros(0, *(s * factor for s in grid.shape[-2:]))


def published_rule(adapter, postprocess: str) -> PublishedGrounding:
    """The adapter's rule called ``postprocess`` (``published`` or ``published-anatomy``), or a one-line error."""
    rules = getattr(adapter, "published_grounding", None) or {}
    name = getattr(adapter, "name", type(adapter).__name__)
    if postprocess not in rules:
        if not rules:
            raise ValueError(f"{name} declares no published grounding post-processing: use "
                             "--grounding-postprocess protocol")
        raise ValueError(f"{name} has no {postprocess!r} grounding post-processing (it has: {', '.join(rules)})")
    return rules[postprocess]


__all__ = ["NORMALISE", "UPSAMPLE", "PublishedGrounding", "published_rule"]
