"""Tiny dataset folders in the real layouts, written by hand for the adapter tests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from cxrbench.data.rle import rle_encode

from .conftest import write_dicom


def _png(path: Path, value: int, size: int = 32, mode: str = "L") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.fromarray(np.full((size, size), value, np.uint8)).convert(mode)
    img.save(path)


def make_nih(root: Path) -> Path:
    """12 images of 6 patients in the Kaggle layout, trailing-comma Data_Entry_2017.csv, box list, lists."""
    rows, names = [], []
    labels = ["Cardiomegaly", "No Finding", "Effusion|Mass", "No Finding", "Pneumothorax", "Atelectasis"]
    for pid in range(1, 7):
        for k in range(2):
            name = f"{pid:08d}_{k:03d}.png"
            names.append(name)
            folder = "images_001" if pid <= 3 else "images_002"
            _png(root / folder / "images" / name, 40 * pid, mode="RGBA" if name == "00000002_001.png" else "L")
            rows.append(f"{name},{labels[pid - 1]},{k},{pid},{50 + pid},M,PA,2500,2048,0.143,0.143,")
    header = ("Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,View Position,"
              "OriginalImage[Width,Height],OriginalImagePixelSpacing[x,y],")
    (root / "Data_Entry_2017.csv").write_text("\n".join([header, *rows]) + "\n")
    (root / "BBox_List_2017.csv").write_text(
        "Image Index,Finding Label,Bbox [x,y,w,h],,,\n00000005_000.png,Pneumothorax,10.5,20.0,100.0,50.0\n"
        "00000003_001.png,Infiltrate,1,2,3,4\n"
    )
    (root / "train_val_list.txt").write_text("\n".join(n for n in names if not n.startswith("00000006")) + "\n")
    (root / "test_list.txt").write_text("00000006_000.png\r\n00000006_001.png")
    return root


def make_rsna(root: Path, n: int = 10) -> Path:
    """``n`` patients, every third positive (the first one with two contiguous box rows), 16 px DICOMs."""
    lines = ["patientId,x,y,width,height,Target"]
    for i in range(n):
        pid = f"00000000-0000-4000-8000-{i:012d}"
        if i % 3 == 0:
            lines.append(f"{pid},264.0,152.0,213.0,379.0,1")
            if i == 0:
                lines.append(f"{pid},562.0,152.0,256.0,453.0,1")
        else:
            lines.append(f"{pid},,,,,0")
        write_dicom(root / "stage_2_train_images" / f"{pid}.dcm", np.full((16, 16), 10 * i, np.uint8), patient_id=pid)
    (root / "stage_2_train_labels.csv").write_text("\n".join(lines) + "\n")
    return root


def make_siim_dicom(root: Path) -> Path:
    """Stage-1 layout: nested DICOMs in dicom-images-train/-test, ``train-rle.csv`` with leading spaces."""
    # the RLE is in the competition's 1024 px frame, like the real release, while the DICOMs written here
    # are a 64 px mirror (the adapter must not decode the masks in the frame of the files)
    mask = np.zeros((1024, 1024), bool)
    mask[160:224, 480:512] = True
    rows = []
    for i in range(8):
        uid = f"1.2.276.0.7230010.3.1.4.8323329.{i}.1517875201.1"
        split = "dicom-images-test" if i >= 6 else "dicom-images-train"
        write_dicom(root / split / f"1.2.3.{i}" / f"1.2.3.{i}.1" / f"{uid}.dcm", np.zeros((64, 64), np.uint8))
        if i % 2:
            rows += [f"{uid}, {rle_encode(mask)}", f"{uid}, {rle_encode(np.roll(mask, 320, axis=1))}"]
        else:
            rows.append(f"{uid}, -1")
    (root / "train-rle.csv").write_text("ImageId, EncodedPixels\n" + "\n".join(rows) + "\n")
    return root


def make_siim_png(root: Path) -> Path:
    """vbookshelf PNG release with the stage-1 CSVs."""
    for split, csv_name, count in (("train", "stage_1_train_images.csv", 6), ("test", "stage_1_test_images.csv", 2)):
        lines = ["new_filename,ImageId,has_pneumo"]
        for i in range(count):
            pos = i % 2
            name = f"{i}_{split}_{pos}_.png"
            _png(root / "png_images" / name, 100)
            _png(root / "png_masks" / name, 255 if pos else 0)
            lines.append(f"{name},1.2.3.{split}.{i},{pos}")
        (root / csv_name).write_text("\n".join(lines) + "\n")
    return root


def make_covidx(root: Path, with_val: bool = True) -> Path:
    """CXR-4 layout (or CXR-3 style without val): multi-dot names, jpg+png, a patient id with a space."""
    entries = {
        "train": [("COVID 1", "COVID(1).png", "positive", "sirm"), ("A1", "A1-1.jpg", "negative", "stonybrook"),
                  ("A2", "A2.png", "negative", "rsna"), ("5", "10.1016-slash-j.x.png", "positive", "cohen"),
                  ("6", "CR.1.2.3.png", "negative", "actmed"), ("7", "7.jpg", "positive", "bimcv")],
        "val": [("8", "8.png", "negative", "rsna"), ("9", "9.png", "positive", "ricord")],
        "test": [("10", "MIDRC-RICORD-1C-1-8.275-0.png", "positive", "ricord"), ("11", "11.png", "negative", "rsna")],
    }
    for split, rows in entries.items():
        if split == "val" and not with_val:
            continue
        name = f"{split}.txt" if with_val else f"{split}_COVIDx9B.txt"
        (root / name).write_text("".join(f"{p} {f} {lab} {s}\n" for p, f, lab, s in rows))
        for _, fname, _, _ in rows:
            _png(root / split / fname, 90, mode="RGB") if fname.endswith(".jpg") else _png(root / split / fname, 90)
    return root


def make_mimic(root: Path) -> Path:
    """MIMIC-CXR-JPG tables (gz) and JPGs for 3 patients / 4 studies / 6 images."""
    import pandas as pd

    meta, split, labels = [], [], []
    for p in range(3):
        sid = 10000032 + p
        for s in range(1 + (p == 0)):
            study = 50414267 + 10 * p + s
            labels.append({"subject_id": sid, "study_id": study, "Atelectasis": 1.0 if p == 1 else None,
                           "No Finding": 1.0 if p != 1 else None, "Edema": -1.0 if p == 2 else 0.0})
            for v, view in enumerate(("PA", "LATERAL")):
                dicom_id = f"{p:08x}-{s:08x}-{v:08x}-00000000-00000000"
                meta.append({"dicom_id": dicom_id, "subject_id": sid, "study_id": study, "ViewPosition": view,
                             "Rows": 40, "Columns": 32})
                split.append({"dicom_id": dicom_id, "study_id": study, "subject_id": sid,
                              "split": ["train", "validate", "test"][p]})
                path = root / "files" / f"p{str(sid)[:2]}" / f"p{sid}" / f"s{study}" / f"{dicom_id}.jpg"
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(np.full((40, 32), 120, np.uint8)).save(path)
    pd.DataFrame(meta).to_csv(root / "mimic-cxr-2.0.0-metadata.csv.gz", index=False)
    pd.DataFrame(split).to_csv(root / "mimic-cxr-2.0.0-split.csv.gz", index=False)
    cols = ["subject_id", "study_id", "Atelectasis", "Cardiomegaly", "Consolidation", "Edema",
            "Enlarged Cardiomediastinum", "Fracture", "Lung Lesion", "Lung Opacity", "No Finding",
            "Pleural Effusion", "Pleural Other", "Pneumonia", "Pneumothorax", "Support Devices"]
    pd.DataFrame(labels).reindex(columns=cols).to_csv(root / "mimic-cxr-2.0.0-chexpert.csv.gz", index=False)
    return root


def make_medslip_pretrain(root: Path, image_root: Path) -> Path:
    """train/valid/test.json with cluster-style keys (prefix ``/cluster/mimic/``) and a (4, 51, 75) matrix."""
    matrix = np.full((4, 51, 75), -1.0)
    matrix[0, 3, 8] = 1.0  # study 0: effusion present
    matrix[1, 3, 8] = 0.0  # study 1: effusion absent
    matrix[2, 0, 10] = 1.0  # study 2: pneumothorax present
    np.save(root / "landmark_observation_adj_mtx.npy", matrix)
    for split, ids in (("train", [0, 1, 2]), ("valid", [3]), ("test", [2])):
        ann = {}
        for j, study in enumerate(ids):
            rel = f"files/p10/p1000000{study}/s5000000{study}/img{split}{j}.jpg"
            ann[f"/cluster/mimic/{rel}"] = {"labels_id": study}
            _png(image_root / rel, 50)
        (root / f"{split}.json").write_text(json.dumps(ann))
    return root
