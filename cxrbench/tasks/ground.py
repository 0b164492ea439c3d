"""Zero-shot grounding: the model's maps against boxes or masks, threshold chosen on validation.

Every (image, class) pair with a ground-truth region is one evaluated map. Maps are upsampled
bilinearly from the patch grid to the evaluated size and min-max normalised per map. One
binarisation threshold per task is chosen to maximise mean Dice over the validation pairs; when
the validation split has no region at all, 20 % of the test patients with regions are carved
out (seeded) to choose it, and the record says so.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from cxrbench.metrics.grounding import grounding_report, select_grounding_threshold, upsample_patch_maps
from cxrbench.tasks.common import TaskData, batched, region_masks, summary_entries
from cxrbench.tasks.plots import overlay_png


def _pairs(adapter, data: TaskData, rows: pd.DataFrame):
    """(maps N x S x S, masks N x S x S, patient ids, class labels, images N x S x S uint8) over pairs
    with a region."""
    size = data.cache.size
    classes = list(data.spec.classes)
    maps, masks, groups, labels, images = [], [], [], [], []
    for c, spec in enumerate(classes):
        positive = rows[rows[spec.label] == 1.0].reset_index(drop=True)
        if positive.empty:
            continue
        region = region_masks(data, positive, spec.label, size)
        keep = region.reshape(len(region), -1).any(1)
        if not keep.any():
            continue
        positive, region = positive[keep].reset_index(drop=True), region[keep]
        grid = batched(lambda x: adapter.ground(x, [spec]), data, positive)  # N x 1 x h x w
        up = upsample_patch_maps(grid.flatten(2), (size, size), tuple(grid.shape[-2:]))[:, 0]
        maps.append(np.asarray(up))
        masks.append(region)
        groups += positive["patient_id"].astype(str).tolist()
        labels += [spec.label] * len(positive)
        images += [np.asarray(data.cache[data.cache.index_of(p)]) for p in positive["path"]]
    if not maps:
        return np.zeros((0, size, size)), np.zeros((0, size, size), bool), [], [], np.zeros((0, size, size))
    return np.concatenate(maps), np.concatenate(masks), groups, labels, np.stack(images)


def run(adapter, data: TaskData, *, out_dir: Path, n_boot: int, seed: int = 0, **_: Any) -> dict:
    val_maps, val_masks, _, _, _ = _pairs(adapter, data, data.rows("val"))
    test_maps, test_masks, groups, labels, images = _pairs(adapter, data, data.rows("test"))
    if len(test_maps) == 0:
        raise ValueError(f"{data.spec.name}: the test split has no image with a ground-truth region")
    threshold_source = "val"
    if len(val_maps) == 0:
        rng = np.random.default_rng(seed)
        patients = np.array(sorted(set(groups)))
        carve = set(rng.choice(patients, size=max(1, len(patients) // 5), replace=False))
        pick = np.array([g in carve for g in groups])
        val_maps, val_masks = test_maps[pick], test_masks[pick]
        test_maps, test_masks, images = test_maps[~pick], test_masks[~pick], images[~pick]
        groups = [g for g, p in zip(groups, pick) if not p]
        labels = [lab for lab, p in zip(labels, pick) if not p]
        threshold_source = f"carved from test: {int(pick.sum())} pairs of {len(carve)} patients (seed {seed})"
    threshold = select_grounding_threshold(val_maps, val_masks)
    pooled = grounding_report(test_maps, test_masks, threshold, groups=np.asarray(groups), n_boot=n_boot, seed=0)
    per_class = {}
    labels_arr = np.asarray(labels)
    for label in dict.fromkeys(labels):
        sel = labels_arr == label
        per_class[label] = grounding_report(test_maps[sel], test_masks[sel], threshold,
                                            groups=np.asarray(groups)[sel], n_boot=n_boot, seed=0)
    summary = summary_entries(pooled, data.spec.metrics)
    overlay = overlay_png(images, test_maps, test_masks, out_dir, "grounding.png")
    return {
        "metrics": {"pooled": pooled, "per_class": per_class},
        "summary": summary,
        "selection": {"threshold": threshold, "chosen_on": threshold_source},
        "n_eval": {"val_pairs": int(len(val_maps)), "test_pairs": int(len(test_maps))},
        "artifacts": [overlay] if overlay else [],
    }

