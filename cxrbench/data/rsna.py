"""RSNA Pneumonia Detection Challenge, stage 2 (``rsna-pneumonia``).

Root = the Kaggle folder with ``stage_2_train_labels.csv`` and ``stage_2_train_images/<patientId>.dcm``.
One image per patient (``image_id`` = ``patient_id`` = ``patientId``).  Boxes ``(x, y, w, h)`` in the
1024x1024 frame; ``Target`` is the ``Pneumonia`` label.  Optional: ``stage_2_detailed_class_info.csv``
(``rsna_class`` column) and a DICOM header table (``view``, ``sex``, ``age`` without opening the DICOMs).
No official test split: a seeded patient-level split, or a user split file such as the MedKLIP/MeDSLIP
5,337-image test CSV (``ID`` column; its ``img_path`` is ignored).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import pandas as pd

from cxrbench.data.base import BaseAdapter, ProblemLog, finish_table, find_file, index_files, require_columns

__all__ = ["RSNAAdapter"]

LABEL_NAMES = ("stage_2_train_labels.csv", "stage_2_train_labels.csv.zip", "kaggle_stage_2_train_labels.csv.zip")
CLASS_INFO_NAMES = ("stage_2_detailed_class_info.csv",)
HEADER_NAMES = ("stage_2_train_images_dicom_headers.csv", "kaggle_stage_2_train_images_dicom_headers.csv.gz")
DETAILED_CLASSES = ("Lung Opacity", "No Lung Opacity / Not Normal", "Normal")
LABEL_COLUMNS = ("patientId", "x", "y", "width", "height", "Target")


class RSNAAdapter(BaseAdapter):
    """RSNA Pneumonia: one DICOM per patient, ``Pneumonia`` = ``Target``, 1-4 boxes per positive patient."""

    name: ClassVar[str] = "rsna-pneumonia"
    classes: ClassVar[tuple[str, ...]] = ("Pneumonia",)
    description: ClassVar[str] = "RSNA Pneumonia (Kaggle stage 2): 26,684 DICOMs, 6,012 positive, 9,555 boxes"
    has_boxes: ClassVar[bool] = True
    label_frame: ClassVar[tuple[int, int] | None] = (1024, 1024)

    def read(self, root: Path, problems: ProblemLog, locate_images: bool = True) -> pd.DataFrame:
        """Group ``stage_2_train_labels.csv`` by patient into the sample table."""
        label_path = find_file(root, LABEL_NAMES, "RSNA label table (stage_2_train_labels.csv)")
        labels = pd.read_csv(label_path, dtype=str)
        labels.columns = [str(c).strip() for c in labels.columns]
        require_columns(label_path, labels.columns, LABEL_COLUMNS)
        labels["patientId"] = labels["patientId"].fillna("").str.strip()
        raw_target = labels["Target"]
        labels["Target"] = pd.to_numeric(labels["Target"], errors="coerce")
        for pid, raw in zip(labels.loc[~labels["Target"].isin([0, 1]), "patientId"],
                            raw_target[~labels["Target"].isin([0, 1])], strict=True):
            problems.add("unknown label", f"{pid}: Target {raw!r} not 0/1", label_path)
        for col in ("x", "y", "width", "height"):
            labels[col] = pd.to_numeric(labels[col], errors="coerce")  # NaN: reported as a malformed box

        grouped = labels.groupby("patientId", sort=False)
        targets = grouped["Target"].agg(["min", "max"])
        for pid in targets.index[targets["min"] != targets["max"]]:
            problems.add("unknown label", f"{pid}: rows disagree on Target", label_path)
        ids = targets.index.to_numpy(dtype=object)
        box_rows = labels[labels["Target"] == 1]
        coords = box_rows[["x", "y", "width", "height"]].to_numpy(dtype=float)
        boxes: dict[str, list[tuple[float, float, float, float]]] = {pid: [] for pid in ids}
        for pid, box in zip(box_rows["patientId"], coords, strict=True):
            boxes[pid].append(tuple(float(v) for v in box))  # NaNs are reported as malformed by check

        frame = pd.DataFrame({"image_id": ids, "patient_id": ids})
        frame["Pneumonia"] = targets["max"].to_numpy(dtype=float)
        frame["boxes"] = [boxes[pid] for pid in ids]
        frame["box_labels"] = [["Pneumonia"] * len(boxes[pid]) for pid in ids]
        frame["split"] = None

        info_path = find_file(root, CLASS_INFO_NAMES, "", required=False)
        if info_path is not None:
            info = pd.read_csv(info_path, dtype=str)
            info.columns = [c.strip() for c in info.columns]
            require_columns(info_path, info.columns, ("patientId", "class"))
            first = info.groupby(info["patientId"].str.strip(), sort=False)["class"].first().str.strip()
            for pid, cls in first[~first.isin(DETAILED_CLASSES)].items():
                problems.add("unknown label", f"{pid}: class '{cls}'", info_path)
            frame["rsna_class"] = frame["image_id"].map(first)
            opacity = (frame["rsna_class"] == "Lung Opacity").astype(float)
            for pid in frame.loc[frame["rsna_class"].notna() & (opacity != frame["Pneumonia"]), "image_id"]:
                problems.add("unknown label", f"{pid}: detailed class disagrees with Target", info_path)

        header_path = find_file(root, HEADER_NAMES, "", required=False)
        if header_path is not None:
            head = pd.read_csv(header_path, dtype=str)
            require_columns(header_path, head.columns, ("PatientID", "ViewPosition", "PatientSex", "PatientAge"))
            head = head.drop_duplicates("PatientID").set_index("PatientID")
            frame["view"] = frame["image_id"].map(head["ViewPosition"])
            frame["sex"] = frame["image_id"].map(head["PatientSex"])
            frame["age"] = pd.to_numeric(frame["image_id"].map(head["PatientAge"]), errors="coerce")

        image_dir = root / "stage_2_train_images"
        located = {} if not locate_images or image_dir.is_dir() else {
            Path(k).stem: v for k, v in index_files(root, (".dcm",)).items()
        }
        frame["path"] = [str(located.get(pid, image_dir / f"{pid}.dcm")) for pid in ids]
        table = finish_table(frame, self.classes)
        table.attrs["box_file"] = str(label_path)
        table.attrs["label_file"] = str(label_path)
        return table

    def facts(self, table: pd.DataFrame) -> dict[str, Any]:
        """Positive patients, boxes, boxes per positive patient, detailed classes."""
        n_boxes = table["boxes"].map(len)
        out: dict[str, Any] = {
            "positive_patients": int((table["Pneumonia"] == 1).sum()),
            "boxes": int(n_boxes.sum()),
            "boxes_per_positive": {str(k): int(v) for k, v in
                                   n_boxes[table["Pneumonia"] == 1].value_counts().sort_index().items()},
        }
        if "rsna_class" in table:
            out["detailed_classes"] = {str(k): int(v) for k, v in table["rsna_class"].value_counts().items()}
        return out

    def validate(self, table: pd.DataFrame, problems: ProblemLog) -> None:
        """A positive patient needs a box; a negative one none."""
        for pid, target, boxes in zip(table["image_id"], table["Pneumonia"], table["boxes"], strict=True):
            if target == 1 and not boxes:
                problems.add("malformed box", f"{pid}: positive without box", table.attrs.get("label_file"))
            if target == 0 and boxes:
                problems.add("malformed box", f"{pid}: negative with boxes", table.attrs.get("label_file"))
