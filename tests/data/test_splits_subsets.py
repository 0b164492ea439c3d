"""Splits and label fractions: seeded, patient-level, stratified, saved and fingerprinted."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from cxrbench.data.registry import DATASETS
from cxrbench.data.splits import read_id_file, sha256_file, write_split_files
from cxrbench.data.subsets import LabelFractionError, label_fraction_subset, make_subset


@pytest.fixture(scope="module")
def nih_table(real_nih_root: Path) -> pd.DataFrame:
    return DATASETS["nih-cxr14"].load(real_nih_root, locate_images=False)


def _ids(table: pd.DataFrame, split: str) -> list[str]:
    return sorted(table.loc[table["split"] == split, "image_id"])


def test_seeded_splits_are_reproducible_patient_level_and_stratified(real_rsna_root: Path, tmp_path: Path) -> None:
    adapter = DATASETS["rsna-pneumonia"]
    a, b, c = (adapter.load(real_rsna_root, seed=s) for s in (0, 0, 1))
    for split in ("train", "val", "test"):
        assert _ids(a, split) == _ids(b, split)
    assert _ids(a, "test") != _ids(c, "test") and _ids(a, "val") != _ids(c, "val")
    assert a.groupby("patient_id")["split"].nunique().max() == 1
    shares = a.groupby("split")["Pneumonia"].mean()
    assert abs(shares["test"] - shares["train"]) < 0.01  # stratified
    assert abs((a["split"] == "test").mean() - 0.2) < 0.01
    files_a = write_split_files(a, tmp_path / "a")
    files_b = write_split_files(b, tmp_path / "b")
    assert {k: v.sha256 for k, v in files_a.items()} == {k: v.sha256 for k, v in files_b.items()}
    lines = files_a["test"].path.read_text().splitlines()
    assert lines == sorted(lines) and len(lines) == files_a["test"].n_images
    assert files_a["test"].sha256 == sha256_file(files_a["test"].path)
    assert read_id_file(files_a["test"].path) == lines


def test_nih_official_lists_and_carved_validation(real_nih_root: Path, tmp_path: Path, nih_table: pd.DataFrame) -> None:
    test_ids = sorted(nih_table.loc[nih_table["patient_id"].astype(int) % 5 == 0, "image_id"])
    train_ids = sorted(set(nih_table["image_id"]) - set(test_ids))
    root = tmp_path / "nih"
    root.mkdir()
    for name in ("Data_Entry_2017_v2020.csv", "BBox_List_2017.csv"):
        (root / name).symlink_to(real_nih_root / name)
    (root / "test_list.txt").write_text("\n".join(test_ids) + "\n")
    (root / "train_val_list.txt").write_text("\n".join(train_ids) + "\n")
    table = DATASETS["nih-cxr14"].load(root, locate_images=False)
    assert _ids(table, "test") == test_ids
    val = table[table["split"] == "val"]
    train_patients = table.loc[table["split"] == "train", "patient_id"].nunique()
    assert abs(val["patient_id"].nunique() / (train_patients + val["patient_id"].nunique()) - 0.1) < 0.01
    assert table.groupby("patient_id")["split"].nunique().max() == 1


def test_label_fraction_subsets(nih_table: pd.DataFrame, tmp_path: Path) -> None:
    classes = DATASETS["nih-cxr14"].classes
    train = nih_table[nih_table["split"] == "train"]
    sub_a, rec_a = make_subset(nih_table, classes, 0.01, seed=0, out_path=tmp_path / "a.txt")
    sub_b, rec_b = make_subset(nih_table, classes, 0.01, seed=0, out_path=tmp_path / "b.txt")
    sub_c, rec_c = make_subset(nih_table, classes, 0.01, seed=1, out_path=tmp_path / "c.txt")
    assert rec_a.sha256 == rec_b.sha256 and rec_a.sha256 != rec_c.sha256
    assert set(sub_a["split"]) == {"train"}
    assert abs(len(sub_a) / len(train) - 0.01) < 0.003
    assert all(rec_a.positives[c] > 0 for c in classes)  # every class keeps positives (Hernia too)
    # patient level: a chosen patient brings all of their training images
    chosen = set(sub_a["patient_id"])
    assert len(sub_a) == int(train["patient_id"].isin(chosen).sum())
    assert len(label_fraction_subset(nih_table, classes, 1.0)) == len(train)


@pytest.mark.parametrize("frac", [0, -0.1, 1.5, float("nan"), "x"])
def test_label_fraction_out_of_range_is_refused(nih_table: pd.DataFrame, frac: object) -> None:
    with pytest.raises(LabelFractionError, match=r"\(0, 1\]"):
        label_fraction_subset(nih_table, DATASETS["nih-cxr14"].classes, frac)  # type: ignore[arg-type]


def test_subset_without_positive_is_refused(nih_table: pd.DataFrame) -> None:
    negatives = nih_table[nih_table[list(DATASETS["nih-cxr14"].classes)].sum(axis=1) == 0]
    with pytest.raises(LabelFractionError, match="no positive"):
        label_fraction_subset(negatives, DATASETS["nih-cxr14"].classes, 0.5)
