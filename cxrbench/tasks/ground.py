"""Zero-shot grounding: the model's maps against boxes or masks (protocol v2).

Every (image, class) pair of the test split with a ground-truth region is one evaluated map; none is
dropped. Protocol post-processing (default): maps upsampled bilinearly from the patch grid to the evaluated
size and min-max normalised per map. The pointing game (threshold-free) is the headline. IoU and Dice binarise
at one threshold per task: the one maximising mean Dice over the validation pairs; when the validation split
has no region (NIH: every box image is in the official test list), the fixed threshold
:data:`FIXED_THRESHOLD` of the normalised map, declared in the record. No part of the test split chooses it,
unless ``threshold_on="test"`` asks for the published practice (recorded, and marked in the leaderboard).

``postprocess="published"`` reproduces the model's own published post-processing instead (a fidelity option,
recorded): the adapter declares it in ``published_grounding`` (see :mod:`cxrbench.metrics.grounding_postprocess`:
MeDSLIP divides by the batch maximum and repeats each patch, binarised at ``> 0``; MedKLIP repeats each patch of
its raw attention, binarised at ``> 0.008``; GLoRIA's drawing code expands and smooths its 19 x 19 maps; BioViL's
smoothed cosine map is already published). ``"published-anatomy"`` is MeDSLIP's optional product of the pathology
attention with the anatomy decoder's attention averaged over its queries, binarised at ``> 0.01``. A model that
publishes no binarisation keeps the protocol's threshold choice for IoU / Dice.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from cxrbench.data.splits import write_id_file
from cxrbench.metrics.grounding import grounding_report, select_grounding_threshold, upsample_patch_maps
from cxrbench.metrics.grounding_postprocess import PublishedGrounding, published_rule
from cxrbench.phases import phase
from cxrbench.tasks.common import EVAL_BATCH, TaskData, batched, region_masks, summary_entries
from cxrbench.tasks.plots import overlay_png

#: IoU/Dice threshold of the normalised map when the validation split has no region (declared in the record).
FIXED_THRESHOLD = 0.5
#: ``--grounding-postprocess`` values: the harness's definition, or a rule the adapter declares under that name.
POSTPROCESS = ("protocol", "published", "published-anatomy")


#: images drawn in the grounding overlay (the first test pairs)
OVERLAY_IMAGES = 8


def _published_maps(adapter, images: torch.Tensor, spec, size: int, rule: PublishedGrounding) -> torch.Tensor:
    """B x S x S maps of one evaluation batch by the model's published rule."""
    grid = (adapter.ground_anatomy_product(images, [spec]) if rule.anatomy_product else adapter.ground(images, [spec]))
    return rule.apply(grid[:, 0], size)


def _pairs(adapter, data: TaskData, rows: pd.DataFrame, rule: PublishedGrounding | None = None):
    """(maps N x S x S, masks N x S x S, patient ids, class labels, image paths, image ids) over pairs
    with a region."""
    size = data.cache.size
    classes = list(data.spec.classes)
    maps, masks, groups, labels, images, ids = [], [], [], [], [], []
    for c, spec in enumerate(classes):
        positive = rows[rows[spec.label] == 1.0].reset_index(drop=True)
        if positive.empty:
            continue
        region = region_masks(data, positive, spec.label, size)
        keep = region.reshape(len(region), -1).any(1)
        if not keep.any():
            continue
        positive, region = positive[keep].reset_index(drop=True), region[keep]
        if rule is None:
            grid = batched(lambda x: adapter.ground(x, [spec]), data, positive)  # N x 1 x h x w
            up = upsample_patch_maps(grid.flatten(2), (size, size), tuple(grid.shape[-2:]))[:, 0]
        else:
            up = batched(lambda x: _published_maps(adapter, x, spec, size, rule), data, positive)
        maps.append(np.asarray(up))
        masks.append(region)
        groups += positive["patient_id"].astype(str).tolist()
        labels += [spec.label] * len(positive)
        ids += positive["image_id"].astype(str).tolist()
        images += positive["path"].tolist()  # paths: only the few drawn in the overlay are read back
    if not maps:
        return np.zeros((0, size, size)), np.zeros((0, size, size), bool), [], [], [], []
    return np.concatenate(maps), np.concatenate(masks), groups, labels, images, ids


def run(adapter, data: TaskData, *, out_dir: Path, n_boot: int, threshold_on: str = "val",
        postprocess: str = "protocol", **_: Any) -> dict:
    if postprocess not in POSTPROCESS:
        raise ValueError(f"grounding post-processing must be one of {', '.join(POSTPROCESS)}, got {postprocess!r}")
    rule = None if postprocess == "protocol" else published_rule(adapter, postprocess)
    if threshold_on not in ("val", "test"):
        raise ValueError(f"threshold_on must be 'val' or 'test', got {threshold_on!r}")
    with phase("inference"):
        test_maps, test_masks, groups, labels, images, ids = _pairs(adapter, data, data.rows("test"), rule)
    if len(test_maps) == 0:
        raise ValueError(f"{data.spec.name}: the test split has no image with a ground-truth region")
    fixed = rule is not None and rule.threshold is not None  # the model's own binarisation of its own maps
    n_val = 0
    if fixed:
        if threshold_on == "test":
            raise ValueError("the published grounding post-processing binarises at its own fixed threshold; "
                             "--threshold-on test does not apply to it")
        threshold, chosen_on = rule.threshold, "fixed"
        declared = f"published rule: map > {threshold:g} ({rule.describe()}; evaluation batch of {EVAL_BATCH})"
    elif threshold_on == "test":
        threshold, chosen_on = select_grounding_threshold(test_maps, test_masks), "test"
        declared = "maximises mean Dice on the test pairs (published practice, not the protocol)"
    else:
        with phase("inference"):
            val_maps, val_masks, _, _, _, _ = _pairs(adapter, data, data.rows("val"), rule)
        n_val = len(val_maps)
        if n_val:
            threshold, chosen_on = select_grounding_threshold(val_maps, val_masks), "val"
            declared = f"maximises mean Dice on {n_val} validation pairs"
        else:
            threshold, chosen_on = FIXED_THRESHOLD, "fixed"
            declared = (f"fixed {FIXED_THRESHOLD:g} of the min-max normalised map: the validation split has no "
                        "ground-truth region")
    if rule is not None and not fixed:
        declared += f" (maps: {rule.describe()})"
    with phase("metrics"):  # metrics, bootstrap intervals, overlay figure
        options = dict(normalise=not fixed, strict=fixed)
        if fixed:
            options["maps_rule"] = rule.describe()
        pooled = grounding_report(test_maps, test_masks, threshold, groups=np.asarray(groups), n_boot=n_boot, seed=0,
                                  **options)
        per_class = {}
        labels_arr = np.asarray(labels)
        for label in dict.fromkeys(labels):
            sel = labels_arr == label
            per_class[label] = grounding_report(test_maps[sel], test_masks[sel], threshold,
                                                groups=np.asarray(groups)[sel], n_boot=n_boot, seed=0, **options)
        summary = summary_entries(pooled, data.spec.metrics)
        drawn = np.stack([np.asarray(data.cache[data.cache.index_of(p)]) for p in images[:OVERLAY_IMAGES]])
        overlay = overlay_png(drawn, test_maps, test_masks, out_dir, "grounding.png", limit=OVERLAY_IMAGES)
    evaluated = Path(out_dir) / "evaluated.txt"
    evaluated_sha = write_id_file(sorted(set(ids)), evaluated)
    return {
        "metrics": {"pooled": pooled, "per_class": per_class},
        "summary": summary,
        "selection": {"threshold": threshold, "chosen_on": chosen_on, "threshold_on": threshold_on,
                      "threshold_rule": declared, "postprocess": postprocess, "headline": "pointing_game",
                      "postprocess_rule": None if rule is None else rule.describe()},
        "n_eval": {"val_pairs": int(n_val), "test_pairs": int(len(test_maps)),
                   "test_positive_images": len(set(ids)),
                   "evaluated_set": {"path": str(evaluated), "sha256": evaluated_sha, "n_images": len(set(ids))}},
        "artifacts": ([overlay] if overlay else []) + [evaluated.name],
    }

