"""Every documented quirk of the written formats, read back with plain pandas / pydicom / Pillow."""

from __future__ import annotations

import gzip
import json
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest
from PIL import Image

from cxrbench.data.rle import rle_decode
from medslip.vocab import NUM_ANATOMIES, NUM_OBSERVATIONS


def _truth(root: Path) -> list[dict]:
    return [json.loads(line) for line in (root / "synthcxr_truth.jsonl").read_text().splitlines()]


def test_nih_layout_and_quirks(corpora):
    root = corpora["nih-cxr14"]
    header = (root / "Data_Entry_2017_v2020.csv").read_text().splitlines()[0]
    assert header == ("Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,View Position,"
                      "OriginalImage[Width,Height],OriginalImagePixelSpacing[x,y]")
    df = pd.read_csv(root / "Data_Entry_2017_v2020.csv")
    assert list(df.columns) == ["Image Index", "Finding Labels", "Follow-up #", "Patient ID", "Patient Age",
                                "Patient Gender", "View Position", "OriginalImage[Width", "Height]",
                                "OriginalImagePixelSpacing[x", "y]"]
    pngs = sorted(root.glob("images_*/images/*.png"))
    assert len(pngs) == len(df) == 40
    assert all(re.fullmatch(r"\d{8}_\d{3}\.png", p.name) for p in pngs)
    assert (df["Image Index"].str[:8].astype(int) == df["Patient ID"]).all()
    tokens = df["Finding Labels"].str.split("|").explode()
    allowed = {"Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Effusion", "Emphysema", "Fibrosis",
               "Hernia", "Infiltration", "Mass", "Nodule", "Pleural_Thickening", "Pneumonia", "Pneumothorax",
               "No Finding"}
    assert set(tokens) <= allowed
    multi = df["Finding Labels"].str.contains(r"\|")
    assert not df.loc[multi, "Finding Labels"].str.contains("No Finding").any()
    assert set(df["View Position"]) <= {"PA", "AP"} and set(df["Patient Gender"]) <= {"M", "F"}
    modes = {Image.open(p).mode for p in pngs}
    assert "L" in modes and "RGBA" in modes
    box_lines = (root / "BBox_List_2017.csv").read_text().splitlines()
    assert box_lines[0] == "Image Index,Finding Label,Bbox [x,y,w,h],,,"
    assert all(line.count(",") == 5 for line in box_lines[1:])
    boxes = pd.read_csv(root / "BBox_List_2017.csv")
    assert list(boxes.columns) == ["Image Index", "Finding Label", "Bbox [x", "y", "w", "h]", "Unnamed: 6",
                                   "Unnamed: 7", "Unnamed: 8"]
    assert "Infiltration" not in set(boxes["Finding Label"])
    test = (root / "test_list.txt").read_text().splitlines()
    train = (root / "train_val_list.txt").read_text().splitlines()
    assert set(test) | set(train) == set(df["Image Index"]) and not set(test) & set(train)
    assert set(boxes["Image Index"]) <= set(test)
    pid = dict(zip(df["Image Index"], df["Patient ID"]))
    assert not {pid[t] for t in test} & {pid[t] for t in train}


def test_rsna_layout_and_quirks(corpora):
    root = corpora["rsna-pneumonia"]
    text = (root / "stage_2_train_labels.csv").read_text().splitlines()
    assert text[0] == "patientId,x,y,width,height,Target"
    lab = pd.read_csv(root / "stage_2_train_labels.csv")
    neg = lab[lab["Target"] == 0]
    assert neg[["x", "y", "width", "height"]].isna().all().all()
    assert any(re.search(r",\d+\.0,\d+\.0,\d+\.0,\d+\.0,1$", line) for line in text[1:])
    # rows of one patient are contiguous and share the target
    runs = (lab["patientId"] != lab["patientId"].shift()).cumsum()
    assert runs.groupby(lab["patientId"]).nunique().max() == 1
    assert lab.groupby("patientId")["Target"].nunique().max() == 1
    cls = pd.read_csv(root / "stage_2_detailed_class_info.csv")
    assert list(cls.columns) == ["patientId", "class"] and len(cls) == len(lab)
    assert (cls["patientId"] == lab["patientId"]).all()
    assert ((cls["class"] == "Lung Opacity") == (lab["Target"] == 1)).all()
    assert set(cls["class"]) <= {"Lung Opacity", "No Lung Opacity / Not Normal", "Normal"}
    for pid in lab["patientId"].unique()[:5]:
        ds = pydicom.dcmread(root / "stage_2_train_images" / f"{pid}.dcm")
        assert ds.PatientID == pid and ds.Modality == "CR" and ds.PhotometricInterpretation == "MONOCHROME2"
        assert ds.BitsStored == 8 and ds.pixel_array.dtype == np.uint8 and ds.pixel_array.shape == (96, 96)
        assert ds.ViewPosition in ("PA", "AP") and ds.PatientAge.isdigit() and ds.BodyPartExamined == "CHEST"
    box = lab[lab["Target"] == 1].iloc[0] if (lab["Target"] == 1).any() else None
    if box is not None:
        # in the 1024-px frame of the real release, not the 96 px of the written DICOMs
        assert 0 <= box["x"] and box["x"] + box["width"] <= 1024 and box["y"] + box["height"] <= 1024
        assert box["x"] + box["width"] > 96 or box["y"] + box["height"] > 96


def test_siim_layout_rle_and_quirks(corpora):
    root = corpora["siim-acr"]
    raw = (root / "train-rle.csv").read_text().splitlines()
    assert raw[0] == "ImageId, EncodedPixels"
    s1 = pd.read_csv(root / "train-rle.csv")
    assert list(s1.columns) == ["ImageId", " EncodedPixels"]
    assert s1[" EncodedPixels"].str.startswith(" ").all()
    assert (s1[" EncodedPixels"] == " -1").any()
    s2 = pd.read_csv(root / "stage_2_train.csv")
    assert list(s2.columns) == ["ImageId", "EncodedPixels"]
    assert not s2["EncodedPixels"].str.startswith(" ").any()
    files = {p.stem: p for p in root.rglob("*.dcm")}
    assert set(s2["ImageId"]) == set(files)
    assert set(s1["ImageId"]) == {k for k, p in files.items() if "dicom-images-train" in p.parts}
    for p in files.values():  # <folder>/<study>/<series>/<sop>.dcm
        rel = p.relative_to(root).parts
        assert len(rel) == 4 and rel[1].startswith("1.2.276.0.7230010.3.1.2.") and rel[2].startswith(
            "1.2.276.0.7230010.3.1.3.") and rel[3].startswith("1.2.276.0.7230010.3.1.4.")
    truth = {t["image_id"]: t for t in _truth(root)}
    positives = s2[s2["EncodedPixels"] != "-1"]
    assert len(positives) > 0
    for image_id, rows in positives.groupby("ImageId"):
        assert truth[image_id]["rle_rows"] == len(rows)
        assert not (s2.loc[s2["ImageId"] == image_id, "EncodedPixels"] == "-1").any()
        for rle in rows["EncodedPixels"]:
            assert sum(int(t) for t in rle.split()) <= 1024 * 1024  # the competition's 1024 px frame
            m = rle_decode(rle, 1024, 1024)
            ptx = [f for f in truth[image_id]["findings"] if f["name"] == "pneumothorax"][0]
            scale = 1024 / 96  # the truth sidecar is in the frame of the written 96 px image
            boxes = [[v * scale for v in les["box_xywh"]] for les in ptx["lesions"]]
            rows_, cols_ = np.nonzero(m)
            box = [int(cols_.min()), int(rows_.min()), int(cols_.max() - cols_.min() + 1),
                   int(rows_.max() - rows_.min() + 1)]
            # decoded column-major mask lands where the lesion is (to one source pixel of resampling)
            assert any(all(abs(a - b) <= scale + 1 for a, b in zip(box, t)) for t in boxes), (box, boxes)


def test_covidx_layout_and_quirks(corpora):
    root = corpora["covidx-cxr4"]
    names = []
    for split in ("train", "val", "test"):
        txt = root / f"{split}.txt"
        df = pd.read_csv(txt, sep=" ", header=None, dtype=str)
        assert df.shape[1] == 4
        assert set(df[2]) <= {"positive", "negative"}
        for fname in df[1]:
            assert (root / split / fname).is_file()
        names += list(df[1])
    assert any(n.count(".") > 1 for n in names)
    exts = {os.path.splitext(n)[1] for n in names}
    assert {".png", ".jpg"} <= exts
    sizes = {Image.open(p).size for p in root.glob("*/*") if p.suffix in (".png", ".jpg")}
    assert len(sizes) > 1


def test_mimic_layout_and_quirks(corpora):
    root = corpora["mimic-cxr"]
    split = pd.read_csv(root / "mimic-cxr-2.0.0-split.csv.gz")
    assert list(split.columns) == ["dicom_id", "study_id", "subject_id", "split"]
    assert set(split["split"]) <= {"train", "validate", "test"}
    assert split.groupby("subject_id")["split"].nunique().max() == 1
    meta = pd.read_csv(root / "mimic-cxr-2.0.0-metadata.csv.gz")
    assert list(meta.columns) == ["dicom_id", "subject_id", "study_id", "PerformedProcedureStepDescription",
                                  "ViewPosition", "Rows", "Columns", "StudyDate", "StudyTime",
                                  "ProcedureCodeSequence_CodeMeaning", "ViewCodeSequence_CodeMeaning",
                                  "PatientOrientationCodeSequence_CodeMeaning"]
    chex = pd.read_csv(root / "mimic-cxr-2.0.0-chexpert.csv.gz")
    assert list(chex.columns)[:2] == ["subject_id", "study_id"] and len(chex.columns) == 16
    values = chex.iloc[:, 2:].to_numpy().ravel()
    assert set(values[~np.isnan(values)]) <= {1.0, 0.0, -1.0}
    with gzip.open(root / "mimic-cxr-2.0.0-negbio.csv.gz") as fh:
        assert fh.readline().startswith(b"subject_id,study_id,Atelectasis")
    for row in meta.itertuples():
        sid, study = str(row.subject_id), str(row.study_id)
        assert sid.startswith("1") and len(sid) == 8 and study.startswith("5") and len(study) == 8
        assert re.fullmatch(r"([0-9a-f]{8}-){4}[0-9a-f]{8}", row.dicom_id)
        jpg = root / "files" / f"p{sid[:2]}" / f"p{sid}" / f"s{study}" / f"{row.dicom_id}.jpg"
        im = Image.open(jpg)
        assert im.format == "JPEG" and im.mode == "L" and im.size == (row.Columns, row.Rows)
        report = (root / "files" / f"p{sid[:2]}" / f"p{sid}" / f"s{study}.txt").read_text()
        lines = report.split("\n")
        assert lines[0] == " " * 33 + "FINAL REPORT"
        assert all(line.startswith(" ") for line in lines[1:-1]) and lines[-1] == ""
        assert max(len(line) for line in lines) <= 79
        assert re.search(r"\n (IMPRESSION|FINDINGS AND IMPRESSION):\s", report)


def test_medslip_pretrain_files(corpora):
    root = corpora["medslip-pretrain"]
    mtx = np.load(root / "landmark_observation_adj_mtx.npy")
    assert mtx.dtype == np.float64 and mtx.shape[1:] == (NUM_ANATOMIES, NUM_OBSERVATIONS)
    assert set(np.unique(mtx)) <= {-1.0, 0.0, 1.0}
    sids = np.load(root / "landmark_observation_sids.npy")
    assert sids.dtype.kind == "U" and len(sids) == len(mtx)
    seen = []
    for name in ("train.json", "valid.json", "test.json"):
        ann = json.loads((root / name).read_text())
        assert isinstance(ann, dict)
        for path, rec in ann.items():
            assert (root / path).is_file() and set(rec) == {"labels_id"}
            seen.append(rec["labels_id"])
    assert sorted(seen) == list(range(len(mtx)))
    # the npy equals the generator's own int8 matrices; columns and rows keep >= 8 non-1 entries
    assert np.array_equal(np.load(root / "synthcxr_matrices.npy"), mtx.astype(np.int8))
    assert ((mtx != 1).sum(axis=1) >= 8).all() and ((mtx != 1).sum(axis=2) >= 8).all()


@pytest.mark.parametrize("dataset", ["nih-cxr14", "rsna-pneumonia", "siim-acr", "covidx-cxr4", "mimic-cxr"])
def test_manifest(corpora, dataset):
    man = json.loads((corpora[dataset] / "synthcxr_manifest.json").read_text())
    assert man["dataset"] == dataset and man["size"] == 96 and man["seed"] == 3


def test_nih_patient_ids_for_a_full_size_corpus():
    """112,120 images at 1-4 per patient need more patients than NIH's 30,805 ids: v1 failed there ("Cannot take
    a larger sample than population"); smaller corpora keep the draw they always had."""
    import numpy as np

    from cxrbench.synth.writers.nih import NIH_PATIENTS, patient_ids

    ids = patient_ids(np.random.default_rng(3), 56_000)
    assert len(set(ids)) == 56_000 and ids == sorted(ids) and min(ids) >= 1
    old = sorted(int(x) for x in np.random.default_rng(3).choice(np.arange(1, 30806), size=500, replace=False))
    assert patient_ids(np.random.default_rng(3), 500) == old
    assert max(patient_ids(np.random.default_rng(3), NIH_PATIENTS)) == NIH_PATIENTS
