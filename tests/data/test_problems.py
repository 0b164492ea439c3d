"""``load()`` refuses label files with error-kind problems (one line: file, count, examples) and keeps the
warnings; every adapter checks the columns it needs; ``check()`` reports the same problems without raising."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from cxrbench.data.base import DataProblemError, DatasetLayoutError
from cxrbench.data.registry import DATASETS

from . import builders


def test_malformed_rle_stops_load_naming_file_image_and_count(tmp_path: Path) -> None:
    root = builders.make_siim_dicom(tmp_path)
    csv = root / "train-rle.csv"
    bad = ["1.2.276.0.7230010.3.1.4.8323329.0.1517875201.1, 5 7 9", "1.2.276.0.7230010.3.1.4.8323329.2.1517875201.1, 4 x"]
    csv.write_text(csv.read_text().replace("1.2.276.0.7230010.3.1.4.8323329.0.1517875201.1, -1\n", "")
                   .replace("1.2.276.0.7230010.3.1.4.8323329.2.1517875201.1, -1\n", "") + "\n".join(bad) + "\n")
    with pytest.raises(DataProblemError) as info:
        DATASETS["siim-acr"].load(root)
    message = str(info.value)
    assert "\n" not in message and str(csv) in message and "2 malformed RLE problem(s)" in message
    assert "8323329.0.1517875201.1: odd number of RLE tokens (3)" in message and "non-integer token" in message
    assert info.value.problems["malformed RLE"]["count"] == 2
    report = DATASETS["siim-acr"].check(root, labels_only=True)  # the same problems, reported
    assert report.problems["malformed RLE"]["count"] == 2 and report.problems["malformed RLE"]["file"] == str(csv)


def test_unknown_nih_label_stops_load_and_warnings_are_kept(tmp_path: Path) -> None:
    root = builders.make_nih(tmp_path)
    boxes = root / "BBox_List_2017.csv"
    boxes.write_text(boxes.read_text() + "99999999_000.png,Mass,1,2,3,4\n")  # a warning: box for an unknown image
    table = DATASETS["nih-cxr14"].load(root)
    warnings = table.attrs["warnings"]
    assert warnings["box for unknown image"]["count"] == 1 and warnings["box for unknown image"]["file"] == str(boxes)
    entry = root / "Data_Entry_2017.csv"
    entry.write_text(entry.read_text().replace("Cardiomegaly", "Cardiomegally"))
    with pytest.raises(DataProblemError, match=r"Data_Entry_2017.csv: 1 unknown label problem\(s\), e.g. 'Cardiomegally'"):
        DATASETS["nih-cxr14"].load(root)


@pytest.mark.parametrize("value", [3.0, -1, 4, "2", True, None])
def test_invalid_labels_id_stops_load(tmp_path: Path, value) -> None:
    """The old loader set such ids to -1, and the image then trained on the last study's supervision."""
    builders.make_medslip_pretrain(tmp_path, tmp_path)
    ann = json.loads((tmp_path / "train.json").read_text())
    key = sorted(ann)[1]
    ann[key] = {"labels_id": value}
    (tmp_path / "train.json").write_text(json.dumps(ann))
    with pytest.raises(DataProblemError) as info:
        DATASETS["medslip-pretrain"].load(tmp_path, split="train")
    assert str(tmp_path / "train.json") in str(info.value) and f"labels_id {value!r}" in str(info.value)


def test_valid_labels_id_loads(tmp_path: Path) -> None:
    builders.make_medslip_pretrain(tmp_path, tmp_path)
    table = DATASETS["medslip-pretrain"].load(tmp_path, split="train")
    assert table["labels_id"].tolist() == [0, 1, 2] or sorted(table["labels_id"]) == [0, 1, 2]
    assert (table["labels_id"] >= 0).all()


def _drop_column(path: Path, column: str) -> None:
    pd.read_csv(path, dtype=str).drop(columns=[column]).to_csv(path, index=False)


@pytest.mark.parametrize("dataset,make,file,column", [
    ("nih-cxr14", builders.make_nih, "Data_Entry_2017.csv", "Finding Labels"),
    ("nih-cxr14", builders.make_nih, "Data_Entry_2017.csv", "Patient ID"),
    ("nih-cxr14", builders.make_nih, "Data_Entry_2017.csv", "Image Index"),
    ("rsna-pneumonia", builders.make_rsna, "stage_2_train_labels.csv", "Target"),
    ("rsna-pneumonia", builders.make_rsna, "stage_2_train_labels.csv", "width"),
    ("siim-acr", builders.make_siim_dicom, "train-rle.csv", "ImageId"),
    ("mimic-cxr", builders.make_mimic, "mimic-cxr-2.0.0-split.csv.gz", "split"),
    ("mimic-cxr", builders.make_mimic, "mimic-cxr-2.0.0-chexpert.csv.gz", "subject_id"),
])
def test_required_columns(tmp_path: Path, dataset, make, file, column) -> None:
    root = make(tmp_path)
    _drop_column(root / file, column)
    for call in (lambda: DATASETS[dataset].load(root), lambda: DATASETS[dataset].check(root, labels_only=True)):
        with pytest.raises(DatasetLayoutError) as info:
            call()
        message = str(info.value)
        assert "\n" not in message and str(root / file) in message
        assert f"missing column(s) '{column}'" in message and "expected" in message and "found" in message


def test_nih_single_split_list_takes_the_complement(tmp_path: Path) -> None:
    root = builders.make_nih(tmp_path)
    (root / "test_list.txt").unlink()
    table = DATASETS["nih-cxr14"].load(root, locate_images=False)
    listed = set((root / "train_val_list.txt").read_text().split())
    assert set(table.loc[table["split"] != "test", "image_id"]) == listed
    assert set(table.loc[table["split"] == "test", "image_id"]) == {"00000006_000.png", "00000006_001.png"}


def test_both_lists_with_an_unlisted_image_stop_load(tmp_path: Path) -> None:
    root = builders.make_nih(tmp_path)
    lines = (root / "train_val_list.txt").read_text().split()
    (root / "train_val_list.txt").write_text("\n".join(lines[1:]) + "\n")
    with pytest.raises(DataProblemError, match=rf"1 image in no split list problem\(s\), e.g. {lines[0]}"):
        DATASETS["nih-cxr14"].load(root)


def test_box_outside_the_frame_is_an_error(tmp_path: Path) -> None:
    root = builders.make_rsna(tmp_path)
    labels = root / "stage_2_train_labels.csv"
    labels.write_text(labels.read_text().replace("562.0,152.0,256.0,453.0", "900.0,152.0,256.0,453.0"))
    with pytest.raises(DataProblemError, match="outside the 1024x1024 label frame") as info:
        DATASETS["rsna-pneumonia"].load(root)
    assert str(labels) in str(info.value)
