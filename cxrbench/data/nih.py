"""NIH ChestX-ray14 (``nih-cxr14``): Box or Kaggle layout, ``Data_Entry_2017[_v2020].csv``, BBox list, splits.

Root = the folder holding ``Data_Entry_2017*.csv`` (images anywhere below it: ``images/``, ``images_0XX/images/``
or a resized mirror; indexed by file name).  Official splits: ``train_val_list.txt`` -> train (validation
carved from it by patient), ``test_list.txt`` -> test.  Boxes: ``BBox_List_2017.csv`` (``Infiltrate`` ->
``Infiltration``), in the 1024x1024 frame of the released PNGs (``label_frame``), also on a resized mirror.
With only one of the two split lists, the images it does not name take the other split (never a seeded one).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from cxrbench.data.base import (
    BaseAdapter,
    DatasetLayoutError,
    ProblemLog,
    finish_table,
    find_file,
    index_files,
    require_columns,
)

__all__ = ["NIH_CLASSES", "NIHAdapter"]

NIH_CLASSES: tuple[str, ...] = (
    "Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Effusion", "Emphysema", "Fibrosis", "Hernia",
    "Infiltration", "Mass", "Nodule", "Pleural_Thickening", "Pneumonia", "Pneumothorax",
)
NO_FINDING = "No Finding"
BOX_LABEL_FIX = {"Infiltrate": "Infiltration"}
DATA_ENTRY_NAMES = (
    "Data_Entry_2017_v2020.csv", "Data_Entry_2017.csv", "Data_Entry_2017_v2020.csv.gz", "Data_Entry_2017.csv.gz",
)
BBOX_NAMES = ("BBox_List_2017.csv", "BBox_List_2017.csv.gz")
REQUIRED_COLUMNS = ("Image Index", "Finding Labels", "Patient ID")


def label_matrix(labels: pd.Series, classes: tuple[str, ...]) -> tuple[np.ndarray, dict[str, int]]:
    """Exact ``|`` tokens of each (stripped) Finding Labels string -> (n x C 0/1 float matrix, {unknown token: rows}).

    Tokens are stripped; ``No Finding`` is no class and no problem. Each distinct string is split once (NIH has
    about 800 of them in 112k rows), so this costs a factorisation instead of a per-row split.
    """
    codes, uniques = pd.factorize(labels, use_na_sentinel=True)
    column = {c: i for i, c in enumerate(classes)}
    per_unique = np.zeros((len(uniques), len(classes)))
    rows_per_unique = np.bincount(codes[codes >= 0], minlength=len(uniques))
    unknown: dict[str, int] = {}
    for u, text in enumerate(uniques):
        if not text:
            continue
        for token in {t.strip() for t in str(text).split("|")}:
            if token in column:
                per_unique[u, column[token]] = 1.0
            elif token != NO_FINDING:
                unknown[token] = unknown.get(token, 0) + int(rows_per_unique[u])
    out = np.zeros((len(labels), len(classes)))
    out[codes >= 0] = per_unique[codes[codes >= 0]]
    return out, unknown


def _read_list(path: Path | None) -> set[str]:
    if path is None:
        return set()
    return {line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()}


class NIHAdapter(BaseAdapter):
    """NIH ChestX-ray14: 14 labels (exact ``|`` tokens), official train_val/test lists, box list."""

    name: ClassVar[str] = "nih-cxr14"
    classes: ClassVar[tuple[str, ...]] = NIH_CLASSES
    description: ClassVar[str] = "NIH ChestX-ray14: 112,120 PNGs, 14 labels, 984 boxes; official test list"
    has_boxes: ClassVar[bool] = True
    label_frame: ClassVar[tuple[int, int] | None] = (1024, 1024)

    def read(self, root: Path, problems: ProblemLog, locate_images: bool = True) -> pd.DataFrame:
        """Read Data_Entry + BBox list + split lists into the sample table."""
        entry_path = find_file(root, DATA_ENTRY_NAMES, "NIH label table (Data_Entry_2017*.csv)")
        entry = pd.read_csv(entry_path, dtype={"Image Index": str, "Finding Labels": str, "Patient ID": str})
        entry = entry.drop(columns=[c for c in entry.columns if str(c).startswith("Unnamed:")])
        entry.columns = [str(c).strip() for c in entry.columns]
        require_columns(entry_path, entry.columns, REQUIRED_COLUMNS)
        sex_col = "Patient Gender" if "Patient Gender" in entry else "Patient Sex"
        names = entry["Image Index"].fillna("").str.strip()
        n = len(entry)

        raw_pid = entry["Patient ID"].fillna("").str.strip()
        numeric_pid = pd.to_numeric(raw_pid, errors="coerce")
        numeric_pid = numeric_pid.where(np.isfinite(numeric_pid))  # "inf" is not a patient number either
        not_number = numeric_pid.isna().to_numpy()
        for image_id, pid in zip(names[not_number], raw_pid[not_number], strict=True):
            problems.add("unknown label", f"{image_id}: Patient ID {pid!r} is not a number", entry_path)
        as_int = numeric_pid.fillna(0).to_numpy().astype(np.int64).astype(str)  # str(int(v)), vectorised
        patient_ids = np.where(not_number, raw_pid.to_numpy(dtype=object), as_int.astype(object))
        frame = pd.DataFrame({"image_id": names, "patient_id": patient_ids})
        labels, unknown = label_matrix(entry["Finding Labels"].fillna("").str.strip(), NIH_CLASSES)
        for token in sorted(unknown):
            problems.add("unknown label", f"'{token}' in Finding Labels ({unknown[token]} rows)", entry_path)
        for c, cls in enumerate(NIH_CLASSES):
            frame[cls] = labels[:, c]
        empty = entry["Finding Labels"].isna() | (entry["Finding Labels"].str.strip() == "")
        for image_id in names[empty]:
            problems.add("unknown label", f"{image_id}: empty Finding Labels", entry_path)
        frame.loc[empty.to_numpy(), list(NIH_CLASSES)] = np.nan

        frame["view"] = entry.get("View Position")
        frame["orig_width"] = entry.get("OriginalImage[Width")
        frame["orig_height"] = entry.get("Height]")
        frame["sex"] = entry.get(sex_col)
        frame["age"] = entry.get("Patient Age")
        frame["follow_up"] = entry.get("Follow-up #")

        # Boxes.
        boxes: list[list[tuple[float, float, float, float]]] = [[] for _ in range(n)]
        box_labels: list[list[str]] = [[] for _ in range(n)]
        bbox_path = find_file(root, BBOX_NAMES, "NIH box list", required=False)
        if bbox_path is not None:
            bbox = pd.read_csv(bbox_path, header=None, skiprows=1, dtype=str)
            if bbox.shape[1] < 6:
                raise DatasetLayoutError(f"{bbox_path}: expected 6 columns (Image Index, Finding Label, x, y, w, "
                                         f"h); found {bbox.shape[1]}")
            bbox = bbox.iloc[:, :6]
            bbox.columns = ["image", "label", "x", "y", "w", "h"]
            for col in ("x", "y", "w", "h"):
                bbox[col] = pd.to_numeric(bbox[col], errors="coerce")  # NaN: reported as a malformed box
            row_of = dict(zip(names.tolist(), range(n)))  # the last row wins for a repeated name
            for image, label, x, y, w, h in bbox.itertuples(index=False):
                image, label = str(image).strip(), BOX_LABEL_FIX.get(str(label).strip(), str(label).strip())
                if image not in row_of:
                    problems.add("box for unknown image", image, bbox_path)
                    continue
                if label not in NIH_CLASSES:
                    problems.add("unknown label", f"'{label}' in box list ({image})", bbox_path)
                boxes[row_of[image]].append((float(x), float(y), float(w), float(h)))
                box_labels[row_of[image]].append(label)
        frame["boxes"] = boxes if bbox_path is not None else [None] * n
        frame["box_labels"] = box_labels if bbox_path is not None else [None] * n

        # Official split lists.
        train_val_path = find_file(root, ("train_val_list.txt",), "", required=False)
        test_path = find_file(root, ("test_list.txt",), "", required=False)
        train_val, test = _read_list(train_val_path), _read_list(test_path)
        split = np.full(n, None, dtype=object)
        in_train, in_test = names.isin(train_val).to_numpy(), names.isin(test).to_numpy()
        if train_val_path is not None and test_path is not None:
            split[in_train] = "train"
            split[in_test] = "test"
            for image_id in names[pd.isna(split)]:
                problems.add("image in no split list", f"{image_id} is in neither split list", test_path)
        elif test_path is not None:  # the official test list alone: everything else is train (+ val)
            split[:] = "train"
            split[in_test] = "test"
        elif train_val_path is not None:  # the train_val list alone: everything else is the test split
            split[:] = "test"
            split[in_train] = "train"
        for image_id in sorted((train_val | test) - set(names)):
            problems.add("split list names unknown image", image_id, test_path or train_val_path)
        frame["split"] = split

        located = index_files(root, (".png",)) if locate_images else {}
        default_dir = str(root / "images") + "/"  # (a string prefix: 112k Path joins cost seconds)
        found = names.map(located).astype(object)  # NaN where the image was not found (float when none was)
        frame["path"] = found.where(found.notna(), default_dir + names).to_numpy(dtype=object)
        table = finish_table(frame, self.classes)
        if bbox_path is not None:
            table.attrs["box_file"] = str(bbox_path)
        return table

    def facts(self, table: pd.DataFrame) -> dict[str, Any]:
        """Box count, images with boxes, 'No Finding' images, views."""
        has_boxes = table["boxes"].map(lambda b: bool(b))
        no_finding = (table[list(self.classes)].fillna(0).sum(axis=1) == 0).sum()
        return {
            "boxes": int(table["boxes"].map(lambda b: len(b) if b else 0).sum()),
            "images_with_boxes": int(has_boxes.sum()),
            "no_finding_images": int(no_finding),
            "views": {str(k): int(v) for k, v in table["view"].value_counts().items()},
        }
