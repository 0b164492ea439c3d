"""SIIM-ACR Pneumothorax (stage-1 mirror layout + stage-2 CSV; data-formats.md section 3).

``dicom-images-train/<study>/<series>/<sop>.dcm`` and ``dicom-images-test/...``; ``train-rle.csv`` (train images,
header ``ImageId, EncodedPixels`` with the leading space, every value with a leading space, `` -1`` for empty)
and ``stage_2_train.csv`` (train + test images, no spaces).  One row per lesion, rows unsorted, relative
column-major RLE (:func:`cxrbench.data.rle.rle_encode`) in the competition's 1024x1024 frame, whatever ``size``
the DICOMs are written at (the lesion masks are resampled, nearest, to 1024 px).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from cxrbench.data.rle import EMPTY_RLE, rle_encode

from ..render import render_case
from ._common import TRUTH_FILE, Tick, mask_in_label_frame, truth_record, uid_triplet, uuid4, write_csv, write_dicom, write_jsonl


def write(root: Path, n: int, size: int, seed: int, tick: Tick) -> dict:
    """Write ``n`` images (about 10 % into ``dicom-images-test``); returns a summary."""
    rng = np.random.default_rng(seed)
    rows: list[tuple[str, str, bool]] = []  # (ImageId, rle, in stage-1 train)
    truth = []
    for i in range(n):
        case = render_case(rng, "siim", height=size)
        study, series, sop = uid_triplet(rng, i)
        test = rng.random() < 0.1
        folder = "dicom-images-test" if test else "dicom-images-train"
        rel = f"{folder}/{study}/{series}/{sop}.dcm"
        pid = uuid4(rng)
        write_dicom(root / rel, case.image, patient_id=pid, sex=case.patient.sex, age=case.patient.age,
                    view=case.patient.view, uids=(study, series, sop), pixel_spacing=0.168)
        ptx = case.finding("pneumothorax")
        rles = [rle_encode(mask_in_label_frame(les.mask)) for les in ptx.lesions] if ptx else []
        rles = [r for r in rles if r != EMPTY_RLE] or [EMPTY_RLE]
        rows += [(sop, r, not test) for r in rles]
        truth.append(truth_record(case, sop, rel, split="test" if test else "train", rle_rows=len(rles)))
        tick(1)
    order = rng.permutation(len(rows))
    rows = [rows[int(k)] for k in order]
    stage2 = pd.DataFrame({"ImageId": [r[0] for r in rows], "EncodedPixels": [r[1] for r in rows]})
    write_csv(root / "stage_2_train.csv", stage2)
    stage1 = [(r[0], r[1]) for r in rows if r[2]]
    lines = ["ImageId, EncodedPixels"] + [f"{img}, {rle}" for img, rle in stage1]
    (root / "train-rle.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    write_jsonl(root / TRUTH_FILE, truth)
    pos = stage2[stage2["EncodedPixels"] != EMPTY_RLE]
    return {"images": n, "positive_images": int(pos["ImageId"].nunique()), "mask_rows": int(len(pos)),
            "stage1_rows": len(stage1), "stage2_rows": len(rows)}
