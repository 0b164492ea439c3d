"""Every adapter on tiny folders in the real layouts, with images; `check` finds what is broken."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from cxrbench.data.base import SAMPLE_COLUMNS, DatasetAdapter
from cxrbench.data.images import read_image
from cxrbench.data.medslip_pretrain import MedslipPretrainAdapter
from cxrbench.data.registry import DATASETS
from cxrbench.data.siim import load_mask

from . import builders


def _assert_table(table, adapter: DatasetAdapter) -> None:
    assert list(table.columns[: len(SAMPLE_COLUMNS)]) == list(SAMPLE_COLUMNS)
    for cls in adapter.classes:
        assert table[cls].dtype == float
    assert table["image_id"].is_unique
    assert set(table["split"]) <= {"train", "val", "test"} and "val" in set(table["split"])
    assert table.groupby("patient_id")["split"].nunique().max() == 1  # no patient in two splits


def test_registry_matches_protocol() -> None:
    assert list(DATASETS) == ["nih-cxr14", "rsna-pneumonia", "siim-acr", "covidx-cxr4", "mimic-cxr",
                              "medslip-pretrain"]
    for name, adapter in DATASETS.items():
        assert isinstance(adapter, DatasetAdapter) and adapter.name == name and adapter.classes


def test_nih_with_images(tmp_path: Path) -> None:
    root = builders.make_nih(tmp_path)
    adapter = DATASETS["nih-cxr14"]
    table = adapter.load(root)
    _assert_table(table, adapter)
    by_id = table.set_index("image_id")
    assert by_id.loc["00000006_000.png", "split"] == "test"  # official test list (CRLF, no final newline)
    assert by_id.loc["00000003_000.png", "Effusion"] == 1 and by_id.loc["00000003_000.png", "Mass"] == 1
    assert by_id.loc["00000003_001.png", "box_labels"] == ["Infiltration"]
    assert Path(by_id.loc["00000005_000.png", "path"]).parts[-3:] == ("images_002", "images", "00000005_000.png")
    assert "Unnamed: 11" not in table.columns
    report = adapter.check(root)
    assert report.ok, report.problems
    assert report.counts["test"]["images"] == 2 and report.counts["all"]["Pneumothorax"] == 2
    assert read_image(by_id.loc["00000002_001.png", "path"]).shape == (32, 32)  # the RGBA file


def test_nih_check_reports_missing_corrupt_and_unknown(tmp_path: Path) -> None:
    root = builders.make_nih(tmp_path)
    (root / "images_001" / "images" / "00000001_000.png").unlink()
    (root / "images_002" / "images" / "00000004_000.png").write_bytes(b"not a png")
    entry = root / "Data_Entry_2017.csv"
    entry.write_text(entry.read_text().replace("Pneumothorax,0,5", "Pneumothorax|Flu,0,5"))
    bbox = root / "BBox_List_2017.csv"
    bbox.write_text(bbox.read_text() + "00000001_001.png,Mass,5,5,-3,4\n")
    report = DATASETS["nih-cxr14"].check(root)
    assert not report.ok
    assert report.problems["missing image"]["count"] == 1
    assert "00000001_000.png" in report.problems["missing image"]["examples"][0]
    assert report.problems["unreadable image"]["count"] == 1
    assert any("Flu" in e for e in report.problems["unknown label"]["examples"])
    assert report.problems["malformed box"]["count"] == 1
    assert DATASETS["nih-cxr14"].check(root, labels_only=True).problems.keys() == {"unknown label", "malformed box"}


def test_rsna_with_dicoms_and_user_test_list(tmp_path: Path) -> None:
    root = builders.make_rsna(tmp_path)
    adapter = DATASETS["rsna-pneumonia"]
    table = adapter.load(root)
    _assert_table(table, adapter)
    first = table.iloc[0]
    assert first["Pneumonia"] == 1 and first["boxes"] == [(264.0, 152.0, 213.0, 379.0), (562.0, 152.0, 256.0, 453.0)]
    assert adapter.check(root).ok
    ids = list(table["image_id"])
    test_csv = tmp_path / "test.csv"
    test_csv.write_text("ID,img_path,boxes,classes\n" + "".join(f"{i},mdai/x/y/{i}.dcm,nan,0\n" for i in ids[:3]))
    overridden = adapter.load(root, split_file=test_csv)
    assert sorted(overridden.loc[overridden["split"] == "test", "image_id"]) == sorted(ids[:3])
    assert len(adapter.load(root, "test", split_file=test_csv)) == 3
    bad = tmp_path / "bad.txt"
    bad.write_text("not-an-id\n")
    with pytest.raises(ValueError, match="not-an-id"):
        adapter.load(root, split_file=bad)


def test_siim_dicom_release(tmp_path: Path) -> None:
    root = builders.make_siim_dicom(tmp_path)
    adapter = DATASETS["siim-acr"]
    table = adapter.load(root)
    _assert_table(table, adapter)
    assert (table["split"] == "test").sum() == 2  # dicom-images-test
    assert all(Path(p).is_file() for p in table["path"])
    positive = table[table["Pneumothorax"] == 1].iloc[0]
    mask = load_mask(positive)
    assert mask.shape == (1024, 1024)  # the dataset's label frame, not the 64 px of the files on disk
    assert mask.sum() == 2 * 64 * 32 and mask[160:224, 480:512].all() and mask[160:224, 800:832].all()
    assert adapter.check(root).ok
    csv = root / "train-rle.csv"
    csv.write_text(csv.read_text() + "1.2.276.0.7230010.3.1.4.8323329.0.1517875201.1, 5 7 9\n")
    report = adapter.check(root, labels_only=True)
    assert report.problems["malformed RLE"]["count"] == 2  # odd tokens, and '-1' mixed with a mask row


def test_siim_stage2_header_without_spaces(tmp_path: Path) -> None:
    root = builders.make_siim_dicom(tmp_path)
    text = (root / "train-rle.csv").read_text().replace(", ", ",")
    (root / "train-rle.csv").unlink()
    (root / "stage_2_train.csv").write_text(text)
    table = DATASETS["siim-acr"].load(root, locate_images=False)
    assert int(table["Pneumothorax"].sum()) == 4 and len(table) == 8


def test_siim_png_release(tmp_path: Path) -> None:
    root = builders.make_siim_png(tmp_path)
    adapter = DATASETS["siim-acr"]
    table = adapter.load(root)
    _assert_table(table, adapter)
    assert (table["split"] == "test").sum() == 2 and table["Pneumothorax"].sum() == 4
    pos = table[table["Pneumothorax"] == 1].iloc[0]
    assert load_mask(pos).all() and not load_mask(table[table["Pneumothorax"] == 0].iloc[0]).any()
    assert adapter.check(root).ok
    for csv in root.glob("*.csv"):  # without CSVs the file names carry split and label
        csv.unlink()
    again = adapter.load(root)
    assert len(again) == 8 and again["Pneumothorax"].sum() == 4


@pytest.mark.parametrize("with_val", [True, False])
def test_covidx(tmp_path: Path, with_val: bool) -> None:
    root = builders.make_covidx(tmp_path, with_val=with_val)
    adapter = DATASETS["covidx-cxr4"]
    table = adapter.load(root)
    _assert_table(table, adapter)
    by_id = table.set_index("image_id")
    assert by_id.loc["COVID(1).png", "patient_id"] == "COVID 1"
    assert by_id.loc["10.1016-slash-j.x.png", "COVID-19"] == 1.0
    assert by_id.loc["CR.1.2.3.png", "COVID-19"] == 0.0
    report = adapter.check(root)
    assert report.ok, report.problems
    assert report.counts["test"]["images"] == 2
    if with_val:
        assert report.counts["val"]["images"] == 2


def test_mimic(tmp_path: Path) -> None:
    root = builders.make_mimic(tmp_path)
    adapter = DATASETS["mimic-cxr"]
    table = adapter.load(root)
    _assert_table(table, adapter)
    assert dict(table["split"].value_counts()) == {"train": 4, "val": 2, "test": 2}
    p2 = table[table["patient_id"] == "10000034"].iloc[0]
    assert np.isnan(p2["Edema"]) and p2["No Finding"] == 1.0  # -1 (uncertain) -> NaN
    assert np.isnan(table.iloc[0]["Cardiomegaly"])  # blank -> NaN
    assert table.iloc[0]["report_path"].endswith("files/p10/p10000032/s50414267.txt")
    assert set(table["view"]) == {"PA", "LATERAL"} and table.iloc[0]["width"] == 32
    assert adapter.check(root).ok


def test_medslip_pretrain_with_prefix_remap(tmp_path: Path) -> None:
    images = tmp_path / "mimic-jpg"
    root = builders.make_medslip_pretrain(tmp_path, images)
    plain = DATASETS["medslip-pretrain"].check(root)
    assert plain.problems["missing image"]["count"] == 5
    adapter = MedslipPretrainAdapter().with_prefix("/cluster/mimic/", f"{images}/")
    table = adapter.load(root)
    assert set(table["split"]) == {"train", "val", "test"} and len(table) == 5
    row = table[table["labels_id"] == 0].iloc[0]
    assert row["effusion"] == 1.0 and np.isnan(row["pneumothorax"]) and row["patient_id"] == "10000000"
    assert table[table["labels_id"] == 1].iloc[0]["effusion"] == 0.0
    assert adapter.check(root).ok
    shutil.rmtree(images)
    assert not adapter.check(root).ok


def test_siim_train_folder_only_still_gets_a_test_split(tmp_path: Path) -> None:
    root = builders.make_siim_dicom(tmp_path)
    for path in (root / "dicom-images-test").rglob("*.dcm"):
        target = root / "dicom-images-train" / path.relative_to(root / "dicom-images-test")
        target.parent.mkdir(parents=True, exist_ok=True)
        path.rename(target)
    table = DATASETS["siim-acr"].load(root)
    _assert_table(table, DATASETS["siim-acr"])
    assert {"train", "val", "test"} == set(table["split"])


def test_nih_label_matrix_matches_exact_token_splitting():
    """The factorised label parser (issue 19: 14 s -> 5 s for the 112k-row table) gives the per-row token result:
    exact tokens after stripping, 'No Finding' neither a class nor a problem, unknown tokens counted per row."""
    import numpy as np
    import pandas as pd

    from cxrbench.data.nih import NIH_CLASSES, label_matrix

    texts = pd.Series(["Mass", "Mass|Nodule", " Effusion | Mass ", "No Finding", "", "Mass|Masses", "Masses",
                       "Hernia|Hernia", "Pleural_Thickening|Fibrosis", "Mass|Nodule"])
    matrix, unknown = label_matrix(texts, NIH_CLASSES)
    expected = np.zeros_like(matrix)
    for i, text in enumerate(texts):
        for token in {t.strip() for t in text.split("|")} if text else ():
            if token in NIH_CLASSES:
                expected[i, NIH_CLASSES.index(token)] = 1.0
    np.testing.assert_array_equal(matrix, expected)
    assert matrix[2, NIH_CLASSES.index("Effusion")] == 1.0 and matrix[3].sum() == 0 and matrix[4].sum() == 0
    assert unknown == {"Masses": 2}
