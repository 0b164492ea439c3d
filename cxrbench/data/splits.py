"""Splits: official where the dataset has them, else seeded, patient-level and stratified; saved and hashed.

Rules (see ``shared/reference/evaluation-protocol.md``):

* an official split is kept as it is; a dataset without one gets a seeded patient-level split
  (``test_fraction`` of patients to test, the rest to train); an official split without test rows gets
  ``test_fraction`` of its training patients carved into test;
* a validation split always exists: when the dataset has none, ``val_fraction`` of the training patients
  are carved into it;
* a user split file (one id per line, or a CSV with an ``ID`` / ``image_id`` column; ids are image ids or
  patient ids) overrides the test split: every image of a listed patient goes to test, the rest becomes
  train and is then split into train/val;
* stratification is by the rarest positive class of a patient (``negative`` when none); shuffling uses
  ``numpy.random.default_rng(seed)`` over the sorted patient ids, so the result depends only on the seed
  and the set of patients, never on row order.

Split files hold one image id per line, sorted, and are identified by their sha256.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from cxrbench.data.base import SPLIT_NAMES

__all__ = [
    "SplitFile",
    "assign_patients",
    "complete_splits",
    "patient_strata",
    "read_id_file",
    "sha256_file",
    "write_id_file",
    "write_split_files",
]


@dataclass(frozen=True)
class SplitFile:
    """One written split: its name, file, sha256 of the file and number of images."""

    name: str
    path: Path
    sha256: str
    n_images: int


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_id_file(ids: "pd.Series | list[str]", path: str | Path) -> str:
    """Write ids one per line, sorted, LF, trailing newline (atomically); return the file's sha256."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(f"{i}\n" for i in sorted(str(i) for i in ids))
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return sha256_file(path)


def read_id_file(path: str | Path) -> list[str]:
    """Ids from a split file: a CSV with an ``ID`` / ``image_id`` / ``patientId`` column, or one id per line."""
    path = Path(path)
    if path.suffix.lower() == ".csv":
        frame = pd.read_csv(path, dtype=str)
        frame.columns = [c.strip() for c in frame.columns]
        for col in ("ID", "image_id", "patientId", "ImageId", "Image Index", "dicom_id"):
            if col in frame:
                return [v.strip() for v in frame[col].dropna()]
        raise ValueError(f"{path}: split CSV needs an 'ID' (or image_id) column; has {list(frame.columns)}")
    lines = path.read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip()]


def patient_strata(table: pd.DataFrame, classes: tuple[str, ...]) -> pd.Series:
    """Per patient (index, sorted): the rarest class the patient is positive for, or ``negative``."""
    patients = table["patient_id"].astype(str)
    if not classes:
        return pd.Series("negative", index=sorted(patients.unique()), dtype=object)
    pos = (table[list(classes)].to_numpy(dtype=float) == 1.0)
    per_patient = pd.DataFrame(pos, columns=list(classes)).groupby(patients.to_numpy()).any()
    prevalence = per_patient.sum(axis=0)
    order = [c for c in prevalence.sort_values(kind="stable").index if prevalence[c] > 0]
    stratum = pd.Series("negative", index=per_patient.index, dtype=object)
    for cls in reversed(order):  # rarest last, so it wins
        stratum[per_patient[cls].to_numpy()] = cls
    return stratum.sort_index()


def assign_patients(strata: pd.Series, fraction: float, seed: int) -> set[str]:
    """Pick about ``fraction`` of the patients in every stratum (at least one overall when fraction > 0)."""
    rng = np.random.default_rng(seed)
    chosen: list[str] = []
    for key in sorted(strata.unique(), key=str):
        members = np.array(sorted(strata.index[strata.to_numpy() == key]), dtype=object)
        rng.shuffle(members)
        chosen.extend(members[: int(round(fraction * len(members)))])
    if not chosen and fraction > 0 and len(strata):
        members = np.array(sorted(strata.index), dtype=object)
        chosen.append(members[rng.integers(len(members))])
    return set(chosen)


def complete_splits(
    table: pd.DataFrame,
    classes: tuple[str, ...],
    *,
    seed: int = 0,
    split_file: str | Path | None = None,
    val_fraction: float = 0.1,
    test_fraction: float = 0.2,
) -> pd.DataFrame:
    """Fill ``table['split']`` following the module rules; returns a new table."""
    table = table.copy()
    split = table["split"].astype(object).where(table["split"].notna(), None)
    split = split.replace({"validate": "val", "valid": "val", "validation": "val"})
    patients = table["patient_id"].astype(str)

    if split_file is not None:
        ids = set(read_id_file(split_file))
        hit = table["image_id"].astype(str).isin(ids) | patients.isin(ids)
        matched = set(table.loc[hit, "image_id"].astype(str)) | set(patients[hit])
        unknown = sorted(ids - matched)
        if unknown:
            raise ValueError(
                f"{split_file}: {len(unknown)} id(s) not in the dataset, e.g. {', '.join(unknown[:5])}"
            )
        test_patients = set(patients[hit])
        split = pd.Series(np.where(patients.isin(test_patients), "test", "train"), index=table.index, dtype=object)
    elif split.isna().any():
        # No (complete) official split: seeded patient-level test split for the unassigned rows.
        free = split.isna()
        strata = patient_strata(table[free], classes)
        test_patients = assign_patients(strata, test_fraction, seed)
        split[free] = np.where(patients[free].isin(test_patients), "test", "train")

    if not (split == "test").any():
        # An official split without test rows (e.g. only a train list): carve test from train by patient.
        train = split == "train"
        strata = patient_strata(table[train], classes)
        test_patients = assign_patients(strata, test_fraction, seed)
        split[train & patients.isin(test_patients)] = "test"

    if not (split == "val").any():
        train = split == "train"
        strata = patient_strata(table[train], classes)
        val_patients = assign_patients(strata, val_fraction, seed + 1)
        split[train & patients.isin(val_patients)] = "val"

    bad = sorted(set(split) - set(SPLIT_NAMES))
    if bad:
        raise ValueError(f"unknown split value(s) {bad}; expected {SPLIT_NAMES}")
    table["split"] = split.astype(str)
    return table


def write_split_files(table: pd.DataFrame, out_dir: str | Path) -> dict[str, SplitFile]:
    """Write ``<out_dir>/<split>.txt`` for train/val/test (sorted image ids); return name -> SplitFile."""
    out_dir = Path(out_dir)
    result: dict[str, SplitFile] = {}
    for name in SPLIT_NAMES:
        ids = table.loc[table["split"] == name, "image_id"]
        path = out_dir / f"{name}.txt"
        result[name] = SplitFile(name, path, write_id_file(ids, path), int(len(ids)))
    return result
