"""Grounding metrics: box rasterisation, upsampling, pointing game, IoU / Dice, threshold choice."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from monai.metrics import DiceMetric, MeanIoU

from cxrbench.metrics.grounding import (
    boxes_to_mask,
    grounding_report,
    iou_dice_at,
    minmax_normalise,
    pointing_game_hits,
    select_grounding_threshold,
    upsample_patch_maps,
)


def test_boxes_to_mask_scales_and_unions():
    m = boxes_to_mask([[100, 200, 300, 100]], orig_hw=(1000, 1000), out_hw=(10, 10))
    expected = np.zeros((10, 10), bool)
    expected[2:3, 1:4] = True
    np.testing.assert_array_equal(m, expected)
    # non-square scaling: x by W, y by H
    m = boxes_to_mask(np.array([[0, 0, 50, 50]]), orig_hw=(100, 200), out_hw=(10, 10))
    assert m[:5, :3].all() and m.sum() == 15
    # union of boxes, empty list, tiny box, clipping
    two = boxes_to_mask([[0, 0, 10, 10], [90, 90, 10, 10]], (100, 100), (10, 10))
    assert two[0, 0] and two[9, 9] and two.sum() == 2
    assert not boxes_to_mask([], (100, 100), (10, 10)).any()
    assert boxes_to_mask([[55, 55, 1, 1]], (100, 100), (10, 10)).sum() == 1
    assert boxes_to_mask([[95, 95, 50, 50]], (100, 100), (10, 10)).sum() == 1


def test_upsample_patch_maps_matches_interpolate_and_keeps_type():
    maps = torch.rand(2, 3, 16)
    up = upsample_patch_maps(maps, (8, 8))
    assert isinstance(up, torch.Tensor) and up.shape == (2, 3, 8, 8)
    ref = F.interpolate(maps.reshape(6, 1, 4, 4), size=(8, 8), mode="bilinear", align_corners=False)
    torch.testing.assert_close(up, ref.reshape(2, 3, 8, 8))
    up_np = upsample_patch_maps(maps.numpy(), (8, 8))
    assert isinstance(up_np, np.ndarray)
    np.testing.assert_allclose(up_np, up.numpy())
    assert upsample_patch_maps(torch.rand(1, 1, 6), (4, 9), grid_hw=(2, 3)).shape == (1, 1, 4, 9)
    with pytest.raises(ValueError):
        upsample_patch_maps(torch.rand(1, 1, 6), (4, 4))


def test_minmax_and_pointing_game():
    maps = np.zeros((4, 5, 5))
    masks = np.zeros((4, 5, 5), bool)
    masks[:, 1:3, 1:3] = True
    maps[0, 1, 1] = 5.0  # max inside -> hit
    maps[1, 4, 4] = 5.0  # max outside -> miss
    maps[2, 4, 4] = maps[2, 2, 2] = 5.0  # tied maxima, one inside -> hit
    # maps[3] constant -> miss (no location)
    np.testing.assert_array_equal(pointing_game_hits(maps, masks), [True, False, True, False])
    norm = minmax_normalise(maps * 3 - 7)
    assert norm.min() == 0.0 and norm[:3].max(axis=(1, 2)).tolist() == [1.0, 1.0, 1.0]
    assert not norm[3].any()


def test_perfect_map_gives_dice_one_and_matches_monai():
    rng = np.random.default_rng(0)
    masks = rng.random((6, 16, 16)) < 0.3
    masks[:, 0, 0] = True
    ious, dices = iou_dice_at(masks.astype(float), masks, 0.5)
    assert np.all(dices == 1.0) and np.all(ious == 1.0)
    maps = rng.random((6, 16, 16))
    iou, dice = iou_dice_at(maps, masks, 0.6)
    pred = torch.tensor(minmax_normalise(maps) >= 0.6, dtype=torch.float32)[:, None]
    gt = torch.tensor(masks, dtype=torch.float32)[:, None]
    ref_dice = DiceMetric(include_background=True, reduction="none")(pred, gt)[:, 0]
    ref_iou = MeanIoU(include_background=True, reduction="none")(pred, gt)[:, 0]
    np.testing.assert_allclose(dice, ref_dice.numpy(), atol=1e-6)
    np.testing.assert_allclose(iou, ref_iou.numpy(), atol=1e-6)


def test_threshold_selection_uses_validation_and_breaks_ties_high():
    masks = np.zeros((3, 8, 8), bool)
    masks[:, 2:5, 2:5] = True
    maps = masks.astype(float)  # perfect: every threshold in (0, 1] gives Dice 1
    assert select_grounding_threshold(maps, masks, [0.2, 0.4, 0.8]) == 0.8
    noisy = maps + 0.5 * (np.indices((8, 8)).sum(axis=0) / 14.0)  # a ramp spills over at low thresholds
    best = select_grounding_threshold(noisy, masks, np.linspace(0.05, 0.95, 19))
    _, d_best = iou_dice_at(noisy, masks, best)
    for t in np.linspace(0.05, 0.95, 19):
        assert d_best.mean() >= iou_dice_at(noisy, masks, t)[1].mean()
    with pytest.raises(ValueError):
        select_grounding_threshold(maps, np.zeros_like(masks), [0.5])


def test_grounding_report_positive_images_only():
    rng = np.random.default_rng(1)
    masks = np.zeros((10, 8, 8), bool)
    masks[:6, 1:4, 1:4] = True  # 6 positives, 4 negatives
    maps = rng.random((10, 8, 8))
    maps[:3, 2, 2] = 2.0  # three certain hits
    maps[3:6, 7, 7] = 2.0  # three certain misses
    rep = grounding_report(maps, masks, threshold=0.5, groups=np.arange(10) // 2, n_boot=100)
    assert rep["n_positive"] == 6 and rep["n_not_positive"] == 4
    assert rep["pointing_game"]["value"] == pytest.approx(0.5)
    assert rep["bootstrap"]["unit"] == "patient" and rep["bootstrap"]["n_units"] == 3
    iou, dice = iou_dice_at(maps[:6], masks[:6], 0.5)
    assert rep["dice"]["value"] == pytest.approx(dice.mean())
    assert rep["iou"]["value"] == pytest.approx(iou.mean())
    none = grounding_report(maps, np.zeros_like(masks), threshold=0.5, n_boot=10)
    assert none["dice"]["value"] is None and none["dice"]["undefined_reason"] == "no positive image"
