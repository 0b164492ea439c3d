"""Segmentation Dice against MONAI, and the SIIM-ACR empty-mask convention."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.metrics import DiceMetric

from cxrbench.metrics.segmentation import (
    EMPTY_MASK_CONVENTION,
    binarise_logits,
    binarise_probabilities,
    dice_per_image,
    resize_masks_nearest,
    segmentation_report,
)


def _case(seed: int, n: int = 8, size: int = 16):
    rng = np.random.default_rng(seed)
    gt = rng.random((n, size, size)) < 0.3
    gt[:, 0, 0] = True  # non-empty
    logits = rng.normal(size=(n, 1, size, size)) + 2.0 * gt[:, None]
    return gt, logits


def test_dice_matches_monai_on_non_empty_cases():
    gt, logits = _case(0)
    pred = binarise_logits(logits)
    ours = dice_per_image(pred, gt)
    ref = DiceMetric(include_background=True, reduction="none")(
        torch.tensor(pred[:, None], dtype=torch.float32), torch.tensor(gt[:, None], dtype=torch.float32)
    )[:, 0]
    np.testing.assert_allclose(ours, ref.numpy(), atol=1e-6)


def test_logits_and_probabilities_agree():
    gt, logits = _case(1)
    probs = torch.sigmoid(torch.tensor(logits)).numpy()
    np.testing.assert_array_equal(binarise_logits(logits), binarise_probabilities(probs))
    a = segmentation_report(gt, logits=torch.tensor(logits), n_boot=20)
    b = segmentation_report(gt, probabilities=probs, n_boot=20)
    assert a["mean_dice"] == b["mean_dice"] and a["input"] == "logits" and b["input"] == "probabilities"
    with pytest.raises(ValueError):
        binarise_probabilities(logits)  # logits are not probabilities
    with pytest.raises(ValueError):
        segmentation_report(gt, logits=logits, probabilities=probs)


def test_empty_ground_truth_convention_and_perfect_prediction():
    gt = np.zeros((4, 4, 4), bool)
    gt[2:, 1:3, 1:3] = True
    pred = np.zeros_like(gt)
    pred[1, 0, 0] = True  # false positive on an empty image
    pred[2:] = gt[2:]
    np.testing.assert_array_equal(dice_per_image(pred, gt), [1.0, 0.0, 1.0, 1.0])
    rep = segmentation_report(gt, probabilities=pred.astype(float), n_boot=50)
    assert rep["empty_mask_convention"] == EMPTY_MASK_CONVENTION
    assert rep["mean_dice"]["value"] == pytest.approx(0.75)
    assert rep["mean_dice_positive"]["value"] == 1.0
    assert rep["n_positive"] == 2 and rep["n_empty"] == 2
    none = segmentation_report(np.zeros_like(gt), probabilities=np.zeros(gt.shape), n_boot=10)
    assert none["mean_dice"]["value"] == 1.0 and none["mean_dice_positive"]["value"] is None


def test_ground_truth_resized_nearest():
    gt_small = np.zeros((1, 4, 4), bool)
    gt_small[0, 1:3, 0:2] = True
    gt_big = np.kron(gt_small[0], np.ones((2, 2), bool))[None]
    np.testing.assert_array_equal(resize_masks_nearest(gt_big, (4, 4)), gt_small)
    np.testing.assert_array_equal(resize_masks_nearest(gt_small, (8, 8)), gt_big)
    assert dice_per_image(gt_small, gt_big)[0] == 1.0


def test_permuted_ground_truth_changes_dice():
    gt, logits = _case(2)
    pred = binarise_logits(logits)
    perm = np.roll(np.arange(len(gt)), 1)
    assert dice_per_image(pred, gt).mean() > dice_per_image(pred, gt[perm]).mean()


def test_both_trivial_references_are_computed_on_the_same_images():
    """Issue 16 (protocol v2): predict-nothing wins all-image Dice on mostly empty test sets (0.694 on the demo);
    the report now carries both trivial predictors so that a table can show them and bold only above them."""
    from cxrbench.metrics.segmentation import segmentation_report

    masks = np.zeros((10, 8, 8), dtype=bool)
    masks[:3, 2:6, 2:6] = True  # 3 positive images of 16 pixels each, 7 empty ones
    report = segmentation_report(masks, probabilities=np.zeros((10, 8, 8)), n_boot=200,
                                 groups=np.arange(10) // 2)
    refs = report["references"]
    assert refs["predict_nothing"]["mean_dice"]["value"] == pytest.approx(0.7)  # the share of empty images
    assert refs["predict_nothing"]["mean_dice_positive"]["value"] == 0.0
    assert refs["predict_everything"]["mean_dice"]["value"] == pytest.approx(3 * (32 / 80) / 10)
    assert refs["predict_everything"]["mean_dice_positive"]["value"] == pytest.approx(32 / 80)
    # the predict-nothing model itself equals its reference, and no resample of positive-image Dice is lost
    assert report["mean_dice"]["value"] == refs["predict_nothing"]["mean_dice"]["value"]
    assert report["mean_dice_positive"]["n_resamples_skipped"] == 0
