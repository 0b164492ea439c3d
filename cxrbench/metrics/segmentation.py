"""Segmentation metrics: per-image Dice with the SIIM-ACR empty-mask convention.

Conventions
-----------
- Prediction: ``sigmoid(logit) > 0.5`` at the evaluated (prediction) size. Give either probabilities
  (:func:`binarise_probabilities`, ``p > 0.5``) or logits (:func:`binarise_logits`, ``logit > 0``, the same
  rule without computing the sigmoid).
- Ground truth is resized to the prediction size with nearest neighbour (``torch`` ``"nearest-exact"``:
  pixel centres, as PIL / scikit-image do).
- Dice per image ``2|P & G| / (|P| + |G|)``; an image with an empty ground truth scores 1 if the prediction is
  empty, else 0 (SIIM-ACR competition convention; stated in the report).
- Reported: mean Dice over all images, and over positive images (non-empty ground truth) only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from cxrbench.metrics.bootstrap import (
    DEFAULT_CONFIDENCE,
    DEFAULT_MIN_VALID_FRACTION,
    SCHEME,
    bootstrap_weighted_mean,
    make_units,
)

EMPTY_MASK_CONVENTION = (
    "SIIM-ACR: an image with an empty ground-truth mask scores Dice 1 if the prediction is empty, else 0"
)
PREDICTION_RULE = "sigmoid(logit) > 0.5 at the prediction size; ground truth resized with nearest neighbour"


def _to_numpy(x: torch.Tensor | np.ndarray) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def _squeeze_channel(x: np.ndarray, what: str) -> np.ndarray:
    """Accept ``(N, H, W)`` or ``(N, 1, H, W)``; return ``(N, H, W)``."""
    if x.ndim == 4 and x.shape[1] == 1:
        x = x[:, 0]
    if x.ndim != 3:
        raise ValueError(f"{what} must be (N, H, W) or (N, 1, H, W), got {x.shape}")
    return x


def binarise_probabilities(probabilities: torch.Tensor | np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Binary masks from foreground probabilities.

    Args:
        probabilities: ``(N, H, W)`` or ``(N, 1, H, W)`` values in ``[0, 1]`` (already passed through sigmoid).

    Returns:
        ``(N, H, W)`` bool, ``probabilities > threshold``.
    """
    p = _squeeze_channel(_to_numpy(probabilities).astype(np.float64), "probabilities")
    if not np.all(np.isfinite(p)) or p.min(initial=0.0) < 0.0 or p.max(initial=0.0) > 1.0:
        raise ValueError("probabilities must lie in [0, 1]; pass logits= for raw network outputs")
    return p > threshold


def binarise_logits(logits: torch.Tensor | np.ndarray) -> np.ndarray:
    """Binary masks from raw logits: ``sigmoid(logit) > 0.5``, i.e. ``logit > 0``.

    Args:
        logits: ``(N, H, W)`` or ``(N, 1, H, W)`` real values.

    Returns:
        ``(N, H, W)`` bool.
    """
    z = _squeeze_channel(_to_numpy(logits).astype(np.float64), "logits")
    if not np.all(np.isfinite(z)):
        raise ValueError("logits must be finite")
    return z > 0.0


def resize_masks_nearest(masks: torch.Tensor | np.ndarray, out_hw: tuple[int, int]) -> np.ndarray:
    """Resize binary masks with nearest neighbour (pixel centres).

    Args:
        masks: ``(N, H0, W0)`` or ``(N, 1, H0, W0)`` bool / 0-1 values.
        out_hw: ``(H, W)``.

    Returns:
        ``(N, H, W)`` bool.
    """
    g = _squeeze_channel(_to_numpy(masks), "masks").astype(bool)
    if g.shape[1:] == tuple(out_hw):
        return g
    t = torch.from_numpy(g.astype(np.uint8))[:, None]
    out = F.interpolate(t, size=tuple(out_hw), mode="nearest-exact")
    return out[:, 0].numpy().astype(bool)


def dice_per_image(pred_masks: torch.Tensor | np.ndarray, true_masks: torch.Tensor | np.ndarray) -> np.ndarray:
    """Dice per image with the SIIM-ACR empty-mask convention.

    Args:
        pred_masks: ``(N, H, W)`` bool predictions (see :func:`binarise_probabilities` /
            :func:`binarise_logits`).
        true_masks: ``(N, H0, W0)`` (or ``(N, 1, H0, W0)``) ground truth, resized to ``(H, W)`` with nearest
            neighbour when the size differs.

    Returns:
        ``(N,)`` float64 in ``[0, 1]``.
    """
    p = _squeeze_channel(_to_numpy(pred_masks), "pred_masks").astype(bool)
    g = resize_masks_nearest(true_masks, p.shape[1:])
    if g.shape[0] != p.shape[0]:
        raise ValueError(f"{p.shape[0]} predictions for {g.shape[0]} ground-truth masks")
    inter = np.sum(p & g, axis=(1, 2)).astype(np.float64)
    total = (np.sum(p, axis=(1, 2)) + np.sum(g, axis=(1, 2))).astype(np.float64)
    return np.where(total > 0, 2.0 * inter / np.where(total > 0, total, 1.0), 1.0)


def segmentation_report(
    true_masks: torch.Tensor | np.ndarray,
    *,
    probabilities: torch.Tensor | np.ndarray | None = None,
    logits: torch.Tensor | np.ndarray | None = None,
    groups: Sequence[Any] | np.ndarray | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    confidence: float = DEFAULT_CONFIDENCE,
    min_valid_fraction: float = DEFAULT_MIN_VALID_FRACTION,
) -> dict[str, Any]:
    """Mean Dice over all images and over positive images, with bootstrap intervals.

    Args:
        true_masks: ``(N, H0, W0)`` ground truth (resized to the prediction size with nearest neighbour).
        probabilities / logits: ``(N, H, W)`` or ``(N, 1, H, W)``; exactly one must be given.
        groups: ``(N,)`` patient ids, or ``None``.

    Returns:
        JSON-ready dict ``{"empty_mask_convention", "prediction_rule", "input": "probabilities"|"logits",
        "n_images", "n_positive", "n_empty", "mean_dice", "mean_dice_positive", "references", "bootstrap"}``;
        ``references`` holds both metrics of the two trivial predictors (``predict_nothing``,
        ``predict_everything``) on the same images (protocol v2); the two
        metrics are entries ``{"value", "ci_low", "ci_high", "n_resamples_used", "n_resamples_skipped",
        "undefined_reason"}`` (``mean_dice_positive`` is undefined without a positive image).
    """
    if (probabilities is None) == (logits is None):
        raise ValueError("give exactly one of probabilities= or logits=")
    if probabilities is not None:
        pred, kind = binarise_probabilities(probabilities), "probabilities"
    else:
        pred, kind = binarise_logits(logits), "logits"
    dice = dice_per_image(pred, true_masks)
    positive = resize_masks_nearest(true_masks, pred.shape[1:]).any(axis=(1, 2))
    units = make_units(dice.size, groups)
    references = {}
    for name, fill in (("predict_nothing", False), ("predict_everything", True)):
        trivial = dice_per_image(np.full(pred.shape, fill, dtype=bool), true_masks)
        references[name] = {
            "mean_dice": bootstrap_weighted_mean(trivial, groups, n_boot, seed, confidence,
                                                 min_valid_fraction).to_dict(),
            "mean_dice_positive": bootstrap_weighted_mean(
                trivial, groups, n_boot, seed, confidence, min_valid_fraction, include=positive,
                undefined_reason="no positive image").to_dict(),
        }
    return {
        "empty_mask_convention": EMPTY_MASK_CONVENTION,
        "prediction_rule": PREDICTION_RULE,
        "input": kind,
        "n_images": int(dice.size),
        "n_positive": int(positive.sum()),
        "n_empty": int((~positive).sum()),
        "mean_dice": bootstrap_weighted_mean(dice, groups, n_boot, seed, confidence, min_valid_fraction).to_dict(),
        "mean_dice_positive": bootstrap_weighted_mean(
            dice, groups, n_boot, seed, confidence, min_valid_fraction, include=positive,
            undefined_reason="no positive image",
        ).to_dict(),
        "references": references,
        "bootstrap": {
            "n_boot": int(n_boot), "seed": int(seed), "confidence": confidence, "method": "percentile",
            "unit": units.description, "n_units": units.n_units, "min_valid_fraction": min_valid_fraction,
            "stratified": "mean_dice_positive: patients with and without a positive image resampled separately",
            "scheme": SCHEME,
        },
    }
