"""MIMIC-CXR-JPG 2.0.0 (``mimic-cxr``): metadata, official split and CheXpert (or NegBio) labels.

Root = the ``mimic-cxr-jpg/2.0.0`` folder (``files/pXX/pXXXXXXXX/sXXXXXXXX/<dicom_id>.jpg`` and the
``mimic-cxr-2.0.0-{metadata,split,chexpert,negbio}.csv[.gz]`` tables).  Labels: ``1.0`` -> 1, ``0.0`` -> 0,
``-1.0`` (uncertain) and blank (not mentioned) -> NaN.  ``split`` ``validate`` -> ``val``.  The report of a
study is ``files/pXX/pXXXXXXXX/sXXXXXXXX.txt`` (``report_path``; from the MIMIC-CXR reports zip).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from cxrbench.data.base import BaseAdapter, DatasetLayoutError, ProblemLog, finish_table, find_file, require_columns

__all__ = ["CHEXPERT_CLASSES", "MIMICAdapter"]

CHEXPERT_CLASSES: tuple[str, ...] = (
    "Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Enlarged Cardiomediastinum", "Fracture",
    "Lung Lesion", "Lung Opacity", "No Finding", "Pleural Effusion", "Pleural Other", "Pneumonia",
    "Pneumothorax", "Support Devices",
)
PREFIX = "mimic-cxr-2.0.0-"


REQUIRED = {
    "metadata": ("dicom_id", "subject_id", "study_id"),
    "split": ("dicom_id", "subject_id", "study_id", "split"),
    "chexpert": ("subject_id", "study_id"),
    "negbio": ("subject_id", "study_id"),
}


def _table(root: Path, stem: str, required: bool) -> pd.DataFrame | None:
    path = find_file(root, (f"{PREFIX}{stem}.csv.gz", f"{PREFIX}{stem}.csv"), f"MIMIC {stem} table", required)
    if path is None:
        return None
    table = pd.read_csv(path, dtype={"dicom_id": str})
    require_columns(path, table.columns, REQUIRED.get(stem, ()))
    for col in ("subject_id", "study_id"):
        if col in table:
            numbers = pd.to_numeric(table[col], errors="coerce")
            if numbers.isna().any():
                bad = table.loc[numbers.isna(), col].astype(str).tolist()
                raise DatasetLayoutError(f"{path}: {len(bad)} row(s) with a non-integer {col}, e.g. {bad[:3]}")
            table[col] = numbers.astype("int64")
    table.attrs["path"] = str(path)
    return table


class MIMICAdapter(BaseAdapter):
    """MIMIC-CXR-JPG: 14 CheXpert labels per study, official patient-level split."""

    name: ClassVar[str] = "mimic-cxr"
    classes: ClassVar[tuple[str, ...]] = CHEXPERT_CLASSES
    description: ClassVar[str] = "MIMIC-CXR-JPG 2.0.0: 377,110 JPGs, 14 CheXpert labels; official split"
    labeler: ClassVar[str] = "chexpert"

    def read(self, root: Path, problems: ProblemLog, locate_images: bool = True) -> pd.DataFrame:
        """Join metadata and split on ``dicom_id``, labels on ``(subject_id, study_id)``."""
        meta = _table(root, "metadata", required=False)
        split = _table(root, "split", required=meta is None)
        if meta is None and split is None:
            raise DatasetLayoutError(f"{root}: no MIMIC metadata or split table")
        if meta is None:
            base = split[["dicom_id", "subject_id", "study_id", "split"]].copy()
        else:
            base = meta.copy()
            if split is not None:
                base = base.merge(split[["dicom_id", "split"]], on="dicom_id", how="left")
                for dicom_id in base.loc[base["split"].isna(), "dicom_id"]:
                    problems.add("image in no split", str(dicom_id), split.attrs.get("path"))
            else:
                base["split"] = None
        labels = _table(root, self.labeler, required=True)
        unknown_cols = [c for c in labels.columns if c not in ("subject_id", "study_id", *CHEXPERT_CLASSES)]
        for col in unknown_cols:
            problems.add("unknown column", f"column '{col}' in the {self.labeler} table", labels.attrs.get("path"))
        for cls in CHEXPERT_CLASSES:
            if cls not in labels:
                labels[cls] = np.nan
            values = pd.to_numeric(labels[cls], errors="coerce")
            bad = labels[cls].notna() & ~values.isin([1.0, 0.0, -1.0])
            for study in labels.loc[bad, "study_id"]:
                problems.add("unknown label", f"study {study}: {cls}={labels.loc[bad, cls].iloc[0]!r}",
                             labels.attrs.get("path"))
            labels[cls] = values.where(values.isin([0.0, 1.0]))
        base = base.merge(labels[["subject_id", "study_id", *CHEXPERT_CLASSES]],
                          on=["subject_id", "study_id"], how="left", indicator=True)
        studies_without = base.loc[base["_merge"] == "left_only", "study_id"].nunique()

        sid = base["subject_id"].astype(int).astype(str)
        study = base["study_id"].astype(int).astype(str)
        folder = "files/p" + sid.str[:2] + "/p" + sid
        frame = pd.DataFrame({"image_id": base["dicom_id"].astype(str), "patient_id": sid, "study_id": study})
        for cls in CHEXPERT_CLASSES:
            frame[cls] = base[cls].to_numpy(dtype=float)
        frame["path"] = [str(root / f) for f in folder + "/s" + study + "/" + frame["image_id"] + ".jpg"]
        frame["report_path"] = [str(root / f) for f in folder + "/s" + study + ".txt"]
        frame["split"] = base["split"].where(base["split"].notna(), None).to_numpy(dtype=object)
        if "ViewPosition" in base:
            frame["view"] = base["ViewPosition"].where(base["ViewPosition"].notna(), None).to_numpy(dtype=object)
        if "Columns" in base:
            frame["width"], frame["height"] = base["Columns"], base["Rows"]
        table = finish_table(frame, self.classes)
        table.attrs["studies_without_labels"] = int(studies_without)
        return table

    def facts(self, table: pd.DataFrame) -> dict[str, Any]:
        """Studies, views, studies without a label row."""
        return {
            "studies": int(table["study_id"].nunique()),
            "views": {str(k): int(v) for k, v in table["view"].value_counts().items()},
            "studies_without_labels": int(table.attrs.get("studies_without_labels", 0)),
        }
