"""RSNA Pneumonia Detection Challenge (Kaggle stage 2 layout; data-formats.md section 2).

``stage_2_train_images/<patientId>.dcm`` (8-bit MONOCHROME2 CR DICOM, uncompressed), ``stage_2_test_images/``,
``stage_2_train_labels.csv`` (one row per box, contiguous per patient, empty box fields for negatives, integral
floats like ``264.0``), ``stage_2_detailed_class_info.csv`` (same rows, classes ``Lung Opacity`` /
``No Lung Opacity / Not Normal`` / ``Normal``), ``stage_2_sample_submission.csv``.
Boxes are in the 1024-px frame of the real release, whatever ``size`` the DICOMs are written at.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..render import render_case
from ._common import TRUTH_FILE, Tick, box_in_label_frame, truth_record, uid_triplet, uuid4, write_csv, write_dicom, write_jsonl

_SPACINGS = (0.143, 0.168, 0.139, 0.171, 0.194311)


def write(root: Path, n: int, size: int, seed: int, tick: Tick) -> dict:
    """Write ``n`` patients (about 10 % into the unlabeled test folder); returns a summary."""
    rng = np.random.default_rng(seed)
    labels, classes, subm, truth = [], [], [], []
    for i in range(n):
        pid = uuid4(rng)
        case = render_case(rng, "rsna", height=size)
        test = rng.random() < 0.1
        folder = "stage_2_test_images" if test else "stage_2_train_images"
        write_dicom(root / folder / f"{pid}.dcm", case.image, patient_id=pid, sex=case.patient.sex,
                    age=case.patient.age, view=case.patient.view, uids=uid_triplet(rng, i),
                    pixel_spacing=float(rng.choice(_SPACINGS)))
        truth.append(truth_record(case, pid, f"{folder}/{pid}.dcm", split="test" if test else "train"))
        tick(1)
        if test:
            subm.append({"patientId": pid, "PredictionString": "0.5 0 0 100 100"})
            continue
        pneu = case.finding("pneumonia")
        boxes = [box_in_label_frame(b, size) for b in (les.box() for les in pneu.lesions) if b is not None] \
            if pneu else []
        if boxes:
            for x, y, w, h in boxes:
                labels.append({"patientId": pid, "x": float(x), "y": float(y), "width": float(w),
                               "height": float(h), "Target": 1})
                classes.append({"patientId": pid, "class": "Lung Opacity"})
        else:
            labels.append({"patientId": pid, "x": np.nan, "y": np.nan, "width": np.nan, "height": np.nan,
                           "Target": 0})
            cls = "No Lung Opacity / Not Normal" if case.findings else "Normal"
            classes.append({"patientId": pid, "class": cls})
    lab = pd.DataFrame(labels, columns=["patientId", "x", "y", "width", "height", "Target"])
    write_csv(root / "stage_2_train_labels.csv", lab)
    write_csv(root / "stage_2_detailed_class_info.csv", pd.DataFrame(classes, columns=["patientId", "class"]))
    write_csv(root / "stage_2_sample_submission.csv", pd.DataFrame(subm, columns=["patientId", "PredictionString"]))
    write_jsonl(root / TRUTH_FILE, truth)
    per_patient = lab.groupby("patientId", sort=False)["Target"].first()
    return {"patients": int(per_patient.size), "positive_patients": int(per_patient.sum()),
            "boxes": int(lab["Target"].sum()), "test_images": len(subm),
            "classes": {k: int(v) for k, v in pd.DataFrame(classes)["class"].value_counts().sort_index().items()}}
