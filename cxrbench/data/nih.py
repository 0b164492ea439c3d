"""NIH ChestX-ray14 (``nih-cxr14``): Box or Kaggle layout, ``Data_Entry_2017[_v2020].csv``, BBox list, splits.

Root = the folder holding ``Data_Entry_2017*.csv`` (images anywhere below it: ``images/``, ``images_0XX/images/``
or a resized mirror; indexed by file name).  Official splits: ``train_val_list.txt`` -> train (validation
carved from it by patient), ``test_list.txt`` -> test.  Boxes: ``BBox_List_2017.csv`` (``Infiltrate`` ->
``Infiltration``), in the 1024x1024 PNG frame.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from cxrbench.data.base import BaseAdapter, ProblemLog, finish_table, find_file, index_files

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

    def read(self, root: Path, problems: ProblemLog, locate_images: bool = True) -> pd.DataFrame:
        """Read Data_Entry + BBox list + split lists into the sample table."""
        entry_path = find_file(root, DATA_ENTRY_NAMES, "NIH label table (Data_Entry_2017*.csv)")
        entry = pd.read_csv(entry_path, dtype={"Image Index": str, "Finding Labels": str})
        entry = entry.drop(columns=[c for c in entry.columns if str(c).startswith("Unnamed:")])
        sex_col = "Patient Gender" if "Patient Gender" in entry else "Patient Sex"
        names = entry["Image Index"].str.strip()
        n = len(entry)

        frame = pd.DataFrame({"image_id": names, "patient_id": entry["Patient ID"].astype(int).astype(str)})
        dummies = entry["Finding Labels"].fillna("").str.strip().str.get_dummies(sep="|")
        dummies.columns = [c.strip() for c in dummies.columns]
        for token in sorted(set(dummies.columns) - set(NIH_CLASSES) - {NO_FINDING}):
            problems.add("unknown label", f"'{token}' in Finding Labels ({int(dummies[token].sum())} rows)")
        for cls in NIH_CLASSES:
            frame[cls] = dummies[cls].to_numpy(dtype=float) if cls in dummies else np.zeros(n)
        empty = entry["Finding Labels"].isna() | (entry["Finding Labels"].str.strip() == "")
        for image_id in names[empty]:
            problems.add("unknown label", f"{image_id}: empty Finding Labels")
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
            bbox = pd.read_csv(bbox_path, header=None, skiprows=1, usecols=range(6),
                               names=["image", "label", "x", "y", "w", "h"])
            row_of = {name: i for i, name in enumerate(names)}
            for image, label, x, y, w, h in bbox.itertuples(index=False):
                image, label = str(image).strip(), BOX_LABEL_FIX.get(str(label).strip(), str(label).strip())
                if image not in row_of:
                    problems.add("box for unknown image", image)
                    continue
                if label not in NIH_CLASSES:
                    problems.add("unknown label", f"'{label}' in box list ({image})")
                boxes[row_of[image]].append((float(x), float(y), float(w), float(h)))
                box_labels[row_of[image]].append(label)
        frame["boxes"] = boxes if bbox_path is not None else [None] * n
        frame["box_labels"] = box_labels if bbox_path is not None else [None] * n

        # Official split lists.
        train_val = _read_list(find_file(root, ("train_val_list.txt",), "", required=False))
        test = _read_list(find_file(root, ("test_list.txt",), "", required=False))
        split = np.full(n, None, dtype=object)
        if train_val or test:
            split[names.isin(train_val).to_numpy()] = "train"
            split[names.isin(test).to_numpy()] = "test"
            for image_id in names[pd.isna(split)]:
                problems.add("image in no split list", image_id)
            for image_id in sorted((train_val | test) - set(names)):
                problems.add("split list names unknown image", image_id)
        frame["split"] = split

        located = index_files(root, (".png",)) if locate_images else {}
        default_dir = root / "images"
        frame["path"] = [str(located.get(name, default_dir / name)) for name in names]
        return finish_table(frame, self.classes)

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
