"""Evaluation metrics with the project's protocol semantics (see ``reference/evaluation-protocol.md``).

- :mod:`.classification`: per-class / macro AUC, AUPRC, F1 and accuracy with validation thresholds.
- :mod:`.grounding`: pointing game, IoU and Dice of attention / similarity maps.
- :mod:`.segmentation`: per-image Dice with the SIIM-ACR empty-mask convention.
- :mod:`.bootstrap`: percentile bootstrap by image or patient, and mean / std over seeds.

All functions are pure: arrays in, arrays or JSON-ready dicts out; undefined values are ``NaN`` in arrays and
``None`` (with a reason) in reports.
"""

from cxrbench.metrics.bootstrap import (
    Interval,
    bootstrap_ci,
    bootstrap_weighted_mean,
    interval_from_samples,
    mean_std_over_seeds,
    resample_indices,
    resample_weights,
)
from cxrbench.metrics.classification import (
    ClassCounts,
    F1Accuracy,
    average_precision_per_class,
    class_counts,
    classification_report,
    f1_accuracy_at,
    macro_mean,
    roc_auc_per_class,
    select_thresholds,
)
from cxrbench.metrics.grounding import (
    boxes_to_mask,
    grounding_report,
    iou_dice_at,
    minmax_normalise,
    pointing_game_hits,
    select_grounding_threshold,
    upsample_patch_maps,
)
from cxrbench.metrics.segmentation import (
    EMPTY_MASK_CONVENTION,
    binarise_logits,
    binarise_probabilities,
    dice_per_image,
    resize_masks_nearest,
    segmentation_report,
)

__all__ = [
    "EMPTY_MASK_CONVENTION",
    "ClassCounts",
    "F1Accuracy",
    "Interval",
    "average_precision_per_class",
    "binarise_logits",
    "binarise_probabilities",
    "bootstrap_ci",
    "bootstrap_weighted_mean",
    "boxes_to_mask",
    "class_counts",
    "classification_report",
    "dice_per_image",
    "f1_accuracy_at",
    "grounding_report",
    "interval_from_samples",
    "iou_dice_at",
    "macro_mean",
    "mean_std_over_seeds",
    "minmax_normalise",
    "pointing_game_hits",
    "resample_indices",
    "resample_weights",
    "resize_masks_nearest",
    "roc_auc_per_class",
    "segmentation_report",
    "select_grounding_threshold",
    "select_thresholds",
    "upsample_patch_maps",
]
