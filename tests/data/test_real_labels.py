"""`data check --labels-only` on the real label tables shipped with torchxrayvision."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from typer.testing import CliRunner

from cxrbench.cli import app
from cxrbench.data.registry import DATASETS
from cxrbench.data.siim import load_mask

NIH_COUNTS = {
    "Atelectasis": 11559, "Cardiomegaly": 2776, "Consolidation": 4667, "Edema": 2303, "Effusion": 13317,
    "Emphysema": 2516, "Fibrosis": 1686, "Hernia": 227, "Infiltration": 19894, "Mass": 5782, "Nodule": 6331,
    "Pleural_Thickening": 3385, "Pneumonia": 1431, "Pneumothorax": 5302,
}


def _check_json(dataset: str, root: Path) -> dict:
    result = CliRunner().invoke(app, ["data", "check", dataset, "--root", str(root), "--labels-only", "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_nih_labels_only(real_nih_root: Path) -> None:
    report = _check_json("nih-cxr14", real_nih_root)
    assert report["ok"] and report["n_images"] == 112_120 and report["n_patients"] == 30_805
    counts = report["counts"]["all"]
    assert {k: counts[k] for k in NIH_COUNTS} == NIH_COUNTS
    assert report["facts"]["boxes"] == 984 and report["facts"]["images_with_boxes"] == 880
    assert report["facts"]["no_finding_images"] == 60_361
    assert report["facts"]["views"] == {"PA": 67_310, "AP": 44_810}


def test_nih_table_and_boxes(real_nih_root: Path) -> None:
    table = DATASETS["nih-cxr14"].load(real_nih_root, locate_images=False)
    row = table.set_index("image_id").loc["00000001_001.png"]
    assert row["Cardiomegaly"] == 1.0 and row["Emphysema"] == 1.0 and row["Effusion"] == 0.0
    assert row["patient_id"] == "1" and row["view"] == "PA" and row["orig_width"] == 2894
    boxed = table.set_index("image_id").loc["00013118_008.png"]
    assert boxed["box_labels"][0] == "Atelectasis"
    np.testing.assert_allclose(boxed["boxes"][0], (225.084745762712, 547.019216763771, 86.7796610169491,
                                                   79.1864406779661))
    all_box_labels = {lab for labs in table["box_labels"] for lab in labs}
    assert "Infiltration" in all_box_labels and "Infiltrate" not in all_box_labels
    assert table["image_id"].is_unique and set(table["split"]) == {"train", "val", "test"}


def test_rsna_labels_only(real_rsna_root: Path) -> None:
    report = _check_json("rsna-pneumonia", real_rsna_root)
    assert report["ok"] and report["n_patients"] == 26_684 and report["n_images"] == 26_684
    assert report["counts"]["all"]["Pneumonia"] == 6_012
    assert report["facts"]["boxes"] == 9_555
    assert report["facts"]["boxes_per_positive"] == {"1": 2614, "2": 3266, "3": 119, "4": 13}


def test_siim_labels_only_and_column_major_masks(real_siim_root: Path) -> None:
    report = _check_json("siim-acr", real_siim_root)
    assert report["ok"] and report["n_images"] == 12_047
    assert report["counts"]["all"]["Pneumothorax"] == 2_669
    assert report["facts"]["mask_rows"] == 3_576 and report["facts"]["rle_rows"] == 12_954

    raw = pd.read_csv(real_siim_root / "train-rle.csv", dtype=str)
    raw.columns = [c.strip() for c in raw.columns]
    first = raw[raw["EncodedPixels"].str.strip() != "-1"].iloc[0]
    table = DATASETS["siim-acr"].load(real_siim_root, locate_images=False).set_index("image_id")
    mask = load_mask(table.loc[first["ImageId"]])
    ys, xs = np.nonzero(mask)
    assert mask.shape == (1024, 1024) and mask.sum() == 30_859
    assert (ys.min(), ys.max(), xs.min(), xs.max()) == (125, 390, 544, 795)


def test_siim_multi_row_masks_are_unioned(real_siim_root: Path) -> None:
    table = DATASETS["siim-acr"].load(real_siim_root, locate_images=False)
    multi = table[table["n_mask_rows"] > 1].iloc[0]
    union = load_mask(multi)
    from cxrbench.data.rle import rle_decode

    parts = [rle_decode(r) for r in multi["mask_rle"]]
    assert union.sum() >= max(p.sum() for p in parts)
    assert np.array_equal(union, np.logical_or.reduce(parts))


def test_check_table_output_and_list(real_rsna_root: Path) -> None:
    runner = CliRunner()
    out = runner.invoke(app, ["data", "check", "rsna-pneumonia", "--root", str(real_rsna_root), "--labels-only"])
    assert out.exit_code == 0, out.output
    assert "26,684 images, 26,684 patients" in out.output and "| Pneumonia" in out.output
    assert "6,012" in out.output and "OK: no problems found" in out.output
    listed = runner.invoke(app, ["data", "list"])
    assert listed.exit_code == 0
    for name in ("nih-cxr14", "rsna-pneumonia", "siim-acr", "covidx-cxr4", "mimic-cxr", "medslip-pretrain"):
        assert name in listed.output
    bad = runner.invoke(app, ["data", "check", "nope", "--root", str(real_rsna_root)])
    assert bad.exit_code != 0 and "unknown dataset" in bad.output
