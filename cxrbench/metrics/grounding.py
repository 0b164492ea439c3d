"""Zero-shot grounding metrics: pointing game, IoU and Dice of attention / similarity maps.

Conventions
-----------
- A map is one float array per (image, class). Patch-grid maps ``(B, Q, h*w)`` are brought to the image size
  with :func:`upsample_patch_maps` (bilinear, ``align_corners=False``).
- Each map is min-max normalised on its own (:func:`minmax_normalise`). A constant map carries no location:
  it normalises to all zeros and is counted as a miss for the pointing game (it would otherwise "hit"
  everywhere); it is counted in the report (``n_constant_maps``).
- Ground-truth regions are boolean masks. Boxes ``(x, y, w, h)`` in pixels of the original frame are
  rasterised at the evaluated size by :func:`boxes_to_mask`: every output pixel that overlaps a box is in.
- Only positive images (non-empty region) are evaluated; the report counts the others.
- Pointing game: a hit when any pixel holding the map maximum lies in the region; the rate of hits.
- IoU and Dice: the normalised map is binarised as ``map >= threshold``; per image, then averaged. The
  threshold is chosen on validation (:func:`select_grounding_threshold`: highest mean Dice; ties go to the
  highest threshold).
"""

from __future__ import annotations

import math
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

DEFAULT_CANDIDATES = tuple(np.round(np.linspace(0.05, 0.95, 19), 2).tolist())
"""Default candidate thresholds on the normalised map for :func:`select_grounding_threshold`."""

PROTOCOL = {
    "maps": "per-map min-max normalisation; constant maps normalise to 0 and count as misses",
    "region": "boxes (x, y, w, h, original pixels) rasterised at the evaluated size: pixels overlapping a box",
    "images": "positive images only (non-empty region)",
    "pointing_game": "hit when any pixel holding the map maximum lies in the region",
    "iou_dice": "map >= threshold vs region, per image, averaged over images",
    "threshold": "maximises mean Dice on validation positives (ties -> highest threshold); without validation "
                 "regions the fixed 0.5 of the normalised map",
}


def boxes_to_mask(
    boxes: Sequence[Sequence[float]] | np.ndarray,
    orig_hw: tuple[int, int],
    out_hw: tuple[int, int],
) -> np.ndarray:
    """Rasterise boxes into a region mask at the evaluated size.

    Args:
        boxes: ``(K, 4)`` boxes ``(x, y, w, h)`` in pixels of the original frame (x: column, y: row);
            ``K = 0`` gives an empty mask.
        orig_hw: ``(H0, W0)`` of the original frame.
        out_hw: ``(H, W)`` of the evaluated maps.

    Returns:
        ``(H, W)`` bool mask; a pixel is set when its square overlaps a box (so no box with positive width
        and height inside the frame vanishes), clipped to the frame.
    """
    h0, w0 = (float(v) for v in orig_hw)
    h, w = (int(v) for v in out_hw)
    mask = np.zeros((h, w), dtype=bool)
    arr = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    sy, sx = h / h0, w / w0
    for x, y, bw, bh in arr:
        if not (bw > 0 and bh > 0):
            continue
        c0 = max(int(math.floor(x * sx)), 0)
        c1 = min(int(math.ceil((x + bw) * sx)), w)
        r0 = max(int(math.floor(y * sy)), 0)
        r1 = min(int(math.ceil((y + bh) * sy)), h)
        if c1 > c0 and r1 > r0:
            mask[r0:r1, c0:c1] = True
    return mask


def upsample_patch_maps(
    maps: torch.Tensor | np.ndarray,
    out_hw: tuple[int, int],
    grid_hw: tuple[int, int] | None = None,
) -> torch.Tensor | np.ndarray:
    """Bilinearly upsample patch-grid maps to the image size.

    Args:
        maps: ``(B, Q, L)`` with ``L = h * w`` patches in row-major order (e.g. one map per query/class).
        out_hw: ``(H, W)`` image size.
        grid_hw: ``(h, w)``; inferred as square when ``None``.

    Returns:
        ``(B, Q, H, W)`` float maps, a tensor for tensor input (same device) and a numpy array for numpy input.
    """
    as_numpy = isinstance(maps, np.ndarray)
    t = torch.as_tensor(maps)
    if t.ndim != 3:
        raise ValueError(f"maps must be (B, Q, L), got {tuple(t.shape)}")
    b, q, length = t.shape
    if grid_hw is None:
        side = math.isqrt(length)
        if side * side != length:
            raise ValueError(f"L={length} is not square; pass grid_hw")
        grid_hw = (side, side)
    gh, gw = grid_hw
    if gh * gw != length:
        raise ValueError(f"grid {grid_hw} does not match L={length}")
    t = t.float().reshape(b * q, 1, gh, gw)
    up = F.interpolate(t, size=tuple(out_hw), mode="bilinear", align_corners=False)
    up = up.reshape(b, q, *out_hw)
    return up.cpu().numpy() if as_numpy else up


def _to_numpy(x: torch.Tensor | np.ndarray) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def minmax_normalise(maps: torch.Tensor | np.ndarray) -> np.ndarray:
    """Min-max normalise each map to ``[0, 1]``.

    Args:
        maps: ``(N, H, W)`` finite floats.

    Returns:
        ``(N, H, W)`` float (float32 for float32/float16 input, else float64); a constant map becomes all zeros.
    """
    m = _to_numpy(maps)
    m = m.astype(np.result_type(m.dtype, np.float32))  # float32 stays float32 (memory); ints -> float64
    if m.ndim != 3:
        raise ValueError(f"maps must be (N, H, W), got {m.shape}")
    if not np.all(np.isfinite(m)):
        raise ValueError("maps must be finite")
    lo = m.min(axis=(1, 2), keepdims=True)
    span = m.max(axis=(1, 2), keepdims=True) - lo
    return np.where(span > 0, (m - lo) / np.where(span > 0, span, 1.0), 0.0)


def _check_pair(maps: torch.Tensor | np.ndarray, masks: torch.Tensor | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    m = minmax_normalise(maps)
    g = _to_numpy(masks).astype(bool)
    if g.shape != m.shape:
        raise ValueError(f"maps {m.shape} and masks {g.shape} must have the same (N, H, W) shape")
    return m, g


def pointing_game_hits(maps: torch.Tensor | np.ndarray, masks: torch.Tensor | np.ndarray) -> np.ndarray:
    """Pointing-game hit per image.

    Args:
        maps: ``(N, H, W)`` floats. masks: ``(N, H, W)`` bool regions.

    Returns:
        ``(N,)`` bool: any pixel holding the map maximum lies in the region (constant maps: miss).
    """
    m = _to_numpy(maps).astype(np.float64)  # raw values: normalisation does not move the maximum
    g = _to_numpy(masks).astype(bool)
    if m.ndim != 3 or g.shape != m.shape:
        raise ValueError(f"maps {m.shape} and masks {g.shape} must have the same (N, H, W) shape")
    if not np.all(np.isfinite(m)):
        raise ValueError("maps must be finite")
    top = m.max(axis=(1, 2), keepdims=True)
    constant = top[:, 0, 0] == m.min(axis=(1, 2))
    return np.any((m == top) & g, axis=(1, 2)) & ~constant


def iou_dice_at(
    maps: torch.Tensor | np.ndarray, masks: torch.Tensor | np.ndarray, threshold: float
) -> tuple[np.ndarray, np.ndarray]:
    """IoU and Dice per image of the binarised normalised map against the region.

    Args:
        maps: ``(N, H, W)`` floats (normalised here). masks: ``(N, H, W)`` bool. threshold: in ``[0, 1]``.

    Returns:
        ``(iou, dice)``, each ``(N,)`` float64. When both prediction and region are empty, both are 1.
    """
    m, g = _check_pair(maps, masks)
    pred = m >= threshold
    return _iou_dice(pred, g)


def _iou_dice(pred: np.ndarray, g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    inter = np.sum(pred & g, axis=(1, 2)).astype(np.float64)
    p = np.sum(pred, axis=(1, 2)).astype(np.float64)
    t = np.sum(g, axis=(1, 2)).astype(np.float64)
    union = p + t - inter
    both_empty = (p + t) == 0
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(both_empty, 1.0, inter / np.where(union > 0, union, 1.0))
        dice = np.where(both_empty, 1.0, 2.0 * inter / np.where(p + t > 0, p + t, 1.0))
    return iou, dice


def select_grounding_threshold(
    val_maps: torch.Tensor | np.ndarray,
    val_masks: torch.Tensor | np.ndarray,
    candidates: Sequence[float] = DEFAULT_CANDIDATES,
) -> float:
    """Threshold on normalised maps that maximises mean Dice over positive validation images.

    Args:
        val_maps: ``(N, H, W)`` floats. val_masks: ``(N, H, W)`` bool; images with an empty region are
            not positives and are ignored. candidates: thresholds in ``[0, 1]`` to try.

    Returns:
        The best candidate; among equal mean Dice, the highest. Raises ``ValueError`` when there is no
        positive validation image (no threshold can be chosen from validation).
    """
    m, g = _check_pair(val_maps, val_masks)
    positive = g.any(axis=(1, 2))
    if not positive.any():
        raise ValueError("no positive validation image: cannot choose a grounding threshold")
    m, g = m[positive], g[positive]
    cands = np.asarray(sorted(set(float(c) for c in candidates)), dtype=np.float64)
    if cands.size == 0:
        raise ValueError("no candidate thresholds")
    means = np.array([_iou_dice(m >= t, g)[1].mean() for t in cands])
    best = np.flatnonzero(means == means.max())[-1]
    return float(cands[best])


def grounding_report(
    maps: torch.Tensor | np.ndarray,
    masks: torch.Tensor | np.ndarray,
    threshold: float,
    groups: Sequence[Any] | np.ndarray | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    *,
    confidence: float = DEFAULT_CONFIDENCE,
    min_valid_fraction: float = DEFAULT_MIN_VALID_FRACTION,
    normalise: bool = True,
    strict: bool = False,
    maps_rule: str | None = None,
) -> dict[str, Any]:
    """Pointing game, IoU and Dice over positive images, with bootstrap intervals.

    ``normalise=False`` binarises the maps as given (a model's published post-processing, described by
    ``maps_rule`` in the record); ``strict=True`` binarises as ``map > threshold`` instead of ``>=``.

    Args:
        maps: ``(N, H, W)`` maps of one class at the evaluated size.
        masks: ``(N, H, W)`` bool regions (empty for negative images, which are not evaluated).
        threshold: binarisation threshold chosen on validation.
        groups: ``(N,)`` patient ids, or ``None``. Only positive images are resampled.

    Returns:
        JSON-ready dict: ``{"protocol", "threshold", "n_images", "n_positive", "n_not_positive",
        "n_constant_maps", "pointing_game", "iou", "dice", "bootstrap"}`` where each metric is an entry
        ``{"value", "ci_low", "ci_high", "n_resamples_used", "n_resamples_skipped", "undefined_reason"}``.
    """
    m, g = _check_pair(maps, masks)
    if not normalise:
        m = _to_numpy(maps).astype(np.float64)
    positive = g.any(axis=(1, 2))
    pos_idx = np.flatnonzero(positive)
    raw = _to_numpy(maps)[pos_idx]
    m, g = m[pos_idx], g[pos_idx]
    grp = None if groups is None else np.asarray(groups)[pos_idx]
    n_pos = int(pos_idx.size)
    constant = int(np.sum(raw.max(axis=(1, 2)) == raw.min(axis=(1, 2)))) if n_pos else 0
    result: dict[str, Any] = {
        "protocol": dict(PROTOCOL) if normalise and not strict else {
            **PROTOCOL, "maps": f"as given ({maps_rule or 'a published post-processing'})",
            "iou_dice": f"map {'>' if strict else '>='} threshold vs region, per image, averaged over images"},
        "threshold": float(threshold),
        "n_images": int(positive.size),
        "n_positive": n_pos,
        "n_not_positive": int(positive.size - n_pos),
        "n_constant_maps": constant,
    }
    if n_pos == 0:
        empty = {
            "value": None, "ci_low": None, "ci_high": None, "n_resamples_used": 0,
            "n_resamples_skipped": 0, "undefined_reason": "no positive image",
        }
        result.update({"pointing_game": dict(empty), "iou": dict(empty), "dice": dict(empty)})
        result["bootstrap"] = {"n_boot": int(n_boot), "seed": int(seed), "unit": None, "n_units": 0}
        return result
    hits = pointing_game_hits(raw, g).astype(np.float64)
    iou, dice = _iou_dice(m > threshold if strict else m >= threshold, g)
    for name, values in (("pointing_game", hits), ("iou", iou), ("dice", dice)):
        result[name] = bootstrap_weighted_mean(
            values, grp, n_boot, seed, confidence, min_valid_fraction
        ).to_dict()
    units = make_units(n_pos, grp)
    result["bootstrap"] = {
        "n_boot": int(n_boot), "seed": int(seed), "confidence": confidence, "method": "percentile",
        "unit": units.description, "n_units": units.n_units, "min_valid_fraction": min_valid_fraction,
        "scheme": SCHEME,
    }
    return result
