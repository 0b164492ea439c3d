"""Boxes and masks in the dataset's declared frame (NIH, RSNA, SIIM: 1024 px), whatever size the files have.

A resized mirror (here 32 and 64 px files) keeps the release's 1024-px boxes and RLE: the ground-truth
regions must land where the lesions are, not shrink to nothing or cover the image.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from cxrbench.data.base import label_frame
from cxrbench.data.registry import DATASETS
from cxrbench.metrics.grounding import boxes_to_mask
from cxrbench.tasks.common import region_masks

from . import builders


def _task(dataset: str, region: str) -> SimpleNamespace:
    return SimpleNamespace(spec=SimpleNamespace(dataset=dataset, region=region))


def test_declared_frames():
    assert label_frame("nih-cxr14") == label_frame("rsna-pneumonia") == label_frame("siim-acr") == (1024, 1024)


def test_nih_box_on_a_32px_mirror(tmp_path: Path) -> None:
    """The first box of the hand-made table (10.5, 20, 100, 50 in the 1024 frame) on 32-px PNGs."""
    root = builders.make_nih(tmp_path)
    table = DATASETS["nih-cxr14"].load(root)
    rows = table[table["image_id"] == "00000005_000.png"].reset_index(drop=True)
    mask = region_masks(_task("nih-cxr14", "boxes"), rows, "Pneumothorax", 32)[0]
    expected = boxes_to_mask([(10.5, 20.0, 100.0, 50.0)], (1024, 1024), (32, 32))
    assert np.array_equal(mask, expected)
    assert 0 < mask.sum() < 32 * 32 // 4  # a box, not nothing and not the whole image
    cols, rows_ = np.flatnonzero(mask.any(0)), np.flatnonzero(mask.any(1))
    assert (cols[0], cols[-1], rows_[0], rows_[-1]) == (0, 3, 0, 2)  # x 10.5..110.5, y 20..70 of 1024, at 32 px


def test_synthetic_mirror_boxes_land_on_the_lesions(tmp_path: Path) -> None:
    """SynthCXR writes its boxes in the 1024 frame like the release; at 64 px they cover the generator's lesion."""
    from cxrbench.synth import generate

    root = generate("nih-cxr14", tmp_path / "nih", n=60, size=64, seed=1, progress=False)
    table = DATASETS["nih-cxr14"].load(root)
    truth = {t["image_id"]: t for t in map(json.loads, (root / "synthcxr_truth.jsonl").read_text().splitlines())}
    checked = 0
    for row in table[table["boxes"].map(bool)].itertuples(index=False):
        label = row.box_labels[0]
        mask = region_masks(_task("nih-cxr14", "boxes"), table[table["image_id"] == row.image_id], label, 64)[0]
        assert mask.any(), row.image_id  # the old code (file frame) made many of these empty
        lesions = [les["box_xywh"] for f in truth[row.image_id]["findings"] for les in f.get("lesions", [])]
        x, y, w, h = min(lesions, key=lambda b: abs(b[0] - row.boxes[0][0] * 64 / 1024))
        assert mask[int(y + h // 2), int(x + w // 2)], row.image_id  # the lesion's centre is inside the region
        checked += 1
    assert checked > 0


def test_siim_rle_on_a_mirror_is_resized_not_cropped(tmp_path: Path) -> None:
    root = builders.make_siim_dicom(tmp_path)
    table = DATASETS["siim-acr"].load(root)
    rows = table[table["Pneumothorax"] == 1].iloc[:1].reset_index(drop=True)
    mask = region_masks(_task("siim-acr", "masks"), rows, "Pneumothorax", 64)[0]
    # the 1024-frame runs at rows 160..223, columns 480..511 and 800..831 -> 10..13 and 30..31, 50..51 at 64 px
    assert mask[10:14, 30:32].all() and mask[10:14, 50:52].all() and mask.sum() == 2 * 4 * 2


@pytest.mark.slow
def test_grounding_runs_on_a_resized_mirror(tmp_path: Path, monkeypatch) -> None:
    """`run --task nih-ground` on a 64-px mirror evaluates the boxed images (none dropped as empty)."""
    from typer.testing import CliRunner

    import torch
    from cxrbench.cli import app
    from cxrbench.synth import generate
    from medslip import MeDSLIP, MeDSLIPConfig
    from medslip.books import anatomy_texts, encode_books, pathology_texts
    from medslip.checkpoint import save_checkpoint
    from medslip.text import tiny_text_encoder

    torch.manual_seed(0)
    encoder = tiny_text_encoder(width=32)
    model = MeDSLIP(MeDSLIPConfig(backbone="resnet18", num_layers=1, d_model=32, num_heads=2, dim_feedforward=64,
                                  text_width=32), *encode_books(encoder))
    ckpt = save_checkpoint(model, tmp_path / "ckpt", pathology_texts(), anatomy_texts(), text_encoder=encoder.identity,
                           extra={"config": {"data": {"image_size": 64}}})
    root = generate("nih-cxr14", tmp_path / "nih", n=120, size=64, seed=2, progress=False)
    out = tmp_path / "results"
    result = CliRunner().invoke(app, ["run", "--model", "medslip", "--task", "nih-ground", "--data-root", str(root),
                                      "--checkpoint", str(ckpt), "--out", str(out), "--n-boot", "10", "--no-progress"])
    assert result.exit_code == 0, result.output
    [path] = out.rglob("frac-none_seed-none.json")
    record = json.loads(path.read_text())
    table = DATASETS["nih-cxr14"].load(root)
    test = table[table["split"] == "test"]
    pairs = sum(len(set(labels)) for labels in test["box_labels"] if labels)  # (image, boxed class) pairs
    n_eval = record["n_eval"]
    assert pairs > 0 and n_eval["val_pairs"] + n_eval["test_pairs"] == pairs, (pairs, n_eval)
