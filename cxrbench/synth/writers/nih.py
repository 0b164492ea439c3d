"""NIH ChestX-ray14 (Kaggle layout): ``images_0XX/images/*.png``, ``Data_Entry_2017_v2020.csv``,
``BBox_List_2017.csv``, ``train_val_list.txt``, ``test_list.txt`` (data-formats.md section 1).

Quirks reproduced: the 11-field header of ``Data_Entry`` (``OriginalImage[Width,Height]`` split by its comma),
``Pleural_Thickening`` with an underscore, ``No Finding`` alone, the ``Follow-up #`` that differs from the file
name suffix for some images, float spacings like ``0.14300000000000002``, the 9-field header of the box list with
its singular ``Finding Label`` and ``Infiltrate`` (not Infiltration), one RGBA PNG among mode-``L`` ones.
Boxes are in the 1024-px frame of the real release, whatever ``size`` the PNGs are written at (as on a resized
mirror); the ground-truth sidecar keeps the generator's boxes in the frame of the written image.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..render import render_case
from ._common import TRUTH_FILE, Tick, box_in_label_frame, patient_split, save_png, truth_record, write_csv, write_jsonl, write_lines

BOX_LABELS = {"Atelectasis", "Cardiomegaly", "Effusion", "Infiltration", "Pneumonia", "Pneumothorax", "Mass",
              "Nodule"}
_WIDTHS = (2500, 2992, 3056, 2048, 2021, 2682, 2894)
_SPACINGS = (0.14300000000000002, 0.168, 0.139, 0.171, 0.194311)


#: NIH CXR14's patient ids run from 1 to 30,805
NIH_PATIENTS = 30_805


def patient_ids(rng: np.random.Generator, n_patients: int) -> list[int]:
    """``n_patients`` distinct sorted patient ids drawn from NIH's 1..30,805; a corpus with more patients than NIH
    has (the full-size corpus: 112,120 images at 1-4 images per patient) draws from 1..n_patients instead. Up to
    30,805 patients the draw is the one SynthCXR has always made, so existing corpora keep their bytes."""
    pool = np.arange(1, max(NIH_PATIENTS, n_patients) + 1)
    return sorted(int(x) for x in rng.choice(pool, size=n_patients, replace=False))


def write(root: Path, n: int, size: int, seed: int, tick: Tick) -> dict:
    """Write ``n`` images of ``size`` px into ``root``; returns a summary (counts per label)."""
    rng = np.random.default_rng(seed)
    # patients with 1..4 images each
    counts: list[int] = []
    while sum(counts) < n:
        counts.append(int(min(rng.choice([1, 1, 1, 2, 2, 3, 4]), n - sum(counts))))
    pids = patient_ids(rng, len(counts))
    names = [f"{pid:08d}_{k:03d}.png" for pid, c in zip(pids, counts) for k in range(c)]
    block = max(1, -(-n // 4))
    folder = {}
    for i, name in enumerate(sorted(names)):  # first block one short, like images_001 (4,999)
        folder[name] = f"images_{(i + 1) // block + 1:03d}"
    split = patient_split(rng, pids, {"train_val": 0.75, "test": 0.25})
    rows, boxes, truth = [], [], []
    rgba_name = sorted(names)[min(1, n - 1)]
    i = 0
    for pid, c in zip(pids, counts):
        age0 = int(np.clip(rng.normal(50, 17), 1, 90))
        follow_shift = int(rng.integers(1, 4)) if rng.random() < 0.2 else 0
        for k in range(c):
            name = f"{pid:08d}_{k:03d}.png"
            case = render_case(rng, "nih", height=size, patient_seed=seed * 100003 + pid)
            rel = f"{folder[name]}/images/{name}"
            save_png(root / rel, case.image, "RGBA" if name == rgba_name else "L")
            labels = sorted({f.spec.nih for f in case.findings if f.spec.nih})
            width = int(rng.choice(_WIDTHS))
            spacing = float(rng.choice(_SPACINGS))
            rows.append({"Image Index": name, "Finding Labels": "|".join(labels) if labels else "No Finding",
                         "Follow-up #": k + (follow_shift if k else 0), "Patient ID": pid,
                         "Patient Age": min(95, age0 + k), "Patient Gender": case.patient.sex,
                         "View Position": case.patient.view, "OriginalImage[Width": width,
                         "Height]": int(width * rng.uniform(0.8, 1.1)),
                         "OriginalImagePixelSpacing[x": spacing, "y]": spacing})
            if split[pid] == "test":
                for f in case.findings:
                    if f.spec.nih in BOX_LABELS:
                        for les in f.lesions:
                            b = les.box()
                            if b is not None:
                                jit = rng.uniform(-0.5, 0.5, 4)
                                label = "Infiltrate" if f.spec.nih == "Infiltration" else f.spec.nih
                                boxes.append((name, label, *box_in_label_frame(b, size, tuple(jit))))
            truth.append(truth_record(case, name, rel, patient_id=str(pid), split=split[pid]))
            i += 1
            tick(1)
    df = pd.DataFrame(rows)
    write_csv(root / "Data_Entry_2017_v2020.csv", df)
    lines = ["Image Index,Finding Label,Bbox [x,y,w,h],,,"]
    lines += [f"{b[0]},{b[1]},{b[2]!r},{b[3]!r},{b[4]!r},{b[5]!r}" for b in boxes]
    write_lines(root / "BBox_List_2017.csv", lines)
    write_lines(root / "train_val_list.txt", sorted(r["Image Index"] for r in rows
                                                    if split[r["Patient ID"]] == "train_val"))
    write_lines(root / "test_list.txt", sorted(r["Image Index"] for r in rows if split[r["Patient ID"]] == "test"))
    write_jsonl(root / TRUTH_FILE, truth)
    labels = df["Finding Labels"].str.split("|").explode().value_counts().to_dict()
    return {"images": n, "patients": len(pids), "labels": {k: int(v) for k, v in sorted(labels.items())},
            "boxes": len(boxes)}
