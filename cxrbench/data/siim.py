"""SIIM-ACR Pneumothorax (``siim-acr``): DICOM + RLE releases and the vbookshelf PNG release.

Accepted layouts (root = the folder holding them):

* stage 1: ``train-rle.csv`` (header ``ImageId, EncodedPixels`` with leading spaces) and
  ``dicom-images-train/**/<SOPInstanceUID>.dcm`` (+ ``dicom-images-test/``), any depth;
* stage 2: ``stage_2_train.csv`` (no spaces) with the DICOMs anywhere below the root;
* PNG: ``png_images/``, ``png_masks/`` (0/255), ``stage_1_train_images.csv`` / ``stage_1_test_images.csv``
  (``new_filename, ImageId, has_pneumo``); without the CSVs the names ``<n>_<train|test>_<0|1>_.png`` are used.

Masks: ``mask_rle`` holds an image's RLE rows (union them; relative, column-major, 1024x1024: see
:mod:`cxrbench.data.rle`), or ``mask_path`` the PNG.  :func:`load_mask` returns the boolean mask.  One image
per patient is assumed (``patient_id`` = ``image_id``).  Splits: the PNG release's stage-1 train/test; for
DICOMs, images under ``dicom-images-test`` are test; otherwise seeded.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from PIL import Image

from cxrbench.data.base import (
    BaseAdapter,
    DatasetLayoutError,
    ProblemLog,
    finish_table,
    find_file,
    index_files,
    require_columns,
)
from cxrbench.data.rle import is_empty_rle, rle_check, rle_decode_union

__all__ = ["SIIMAdapter", "load_mask"]

RLE_NAMES = (
    "train-rle.csv", "stage_2_train.csv", "train-rle.csv.gz", "stage_2_train.csv.gz",
    "siim-pneumothorax-train-rle.csv.gz",
)
PNG_NAME = re.compile(r"^\d+_(train|test)_([01])_?\.png$")
FRAME = 1024


def load_mask(row: "pd.Series | dict[str, Any]", height: int | None = None, width: int | None = None) -> np.ndarray:
    """The boolean pneumothorax mask of one sample-table row (union of its RLE rows, or the mask PNG > 0).

    RLE masks are decoded in the competition's 1024x1024 frame (the dataset's ``label_frame``), whatever
    size the image file on disk has (a resized mirror keeps the 1024-px RLE), unless ``height``/``width``
    are given.  A malformed RLE raises :class:`~cxrbench.data.rle.RLEError` naming the image.
    """
    from cxrbench.data.rle import RLEError

    mask_path = row.get("mask_path")
    if isinstance(mask_path, str) and mask_path:
        with Image.open(mask_path) as img:
            return np.asarray(img.convert("L")) > 0
    height, width = height or FRAME, width or FRAME
    try:
        return rle_decode_union(row.get("mask_rle") or (), height, width)
    except RLEError as exc:
        raise RLEError(f"{row.get('image_id')}: {exc}") from None


class SIIMAdapter(BaseAdapter):
    """SIIM-ACR Pneumothorax: ``Pneumothorax`` label and masks (RLE rows or PNG masks)."""

    name: ClassVar[str] = "siim-acr"
    classes: ClassVar[tuple[str, ...]] = ("Pneumothorax",)
    description: ClassVar[str] = "SIIM-ACR Pneumothorax: 12,047 images, 2,669 positive; RLE or PNG masks"
    has_masks: ClassVar[bool] = True
    label_frame: ClassVar[tuple[int, int] | None] = (FRAME, FRAME)

    def read(self, root: Path, problems: ProblemLog, locate_images: bool = True) -> pd.DataFrame:
        """Read whichever release is at ``root`` (PNG release first, then an RLE CSV)."""
        if (root / "png_images").is_dir() or (root / "stage_1_train_images.csv").is_file():
            return self._read_png(root, problems)
        return self._read_rle(root, problems, locate_images)

    # ------------------------------------------------------------------------------------------- RLE
    def _read_rle(self, root: Path, problems: ProblemLog, locate_images: bool) -> pd.DataFrame:
        csv = find_file(root, RLE_NAMES, "SIIM RLE table (train-rle.csv or stage_2_train.csv) or png_images/")
        table = pd.read_csv(csv, dtype=str, keep_default_na=False)
        table.columns = [c.strip() for c in table.columns]
        require_columns(csv, table.columns, ("ImageId", "EncodedPixels"))
        ids = table["ImageId"].str.strip()
        rles = table["EncodedPixels"].str.strip()
        masks: dict[str, list[str]] = {}
        empties: dict[str, bool] = {}
        for image_id, rle in zip(ids, rles, strict=True):
            masks.setdefault(image_id, [])
            if is_empty_rle(rle):
                empties[image_id] = True
                continue
            message = rle_check(rle, FRAME, FRAME)
            if message:
                problems.add("malformed RLE", f"{image_id}: {message}", csv)
            masks[image_id].append(rle)
        for image_id in empties:
            if masks[image_id]:
                problems.add("malformed RLE", f"{image_id}: mixes '-1' rows with mask rows", csv)
        image_ids = list(masks)
        frame = pd.DataFrame({"image_id": image_ids, "patient_id": image_ids})
        frame["Pneumothorax"] = [1.0 if masks[i] else 0.0 for i in image_ids]
        frame["mask_rle"] = [tuple(masks[i]) for i in image_ids]
        frame["n_mask_rows"] = [len(masks[i]) for i in image_ids]

        located = {Path(k).stem: v for k, v in index_files(root, (".dcm",)).items()} if locate_images else {}
        default_dir = root / "dicom-images-train"
        frame["path"] = [str(located.get(i, default_dir / f"{i}.dcm")) for i in image_ids]
        split = [None] * len(image_ids)
        if located:
            split = ["test" if "dicom-images-test" in Path(p).parts else
                     "train" if "dicom-images-train" in Path(p).parts else None for p in frame["path"]]
            if any(s is None for s in split):
                split = [None] * len(image_ids)  # not the stage-1 layout: seeded split
        frame["split"] = split
        return finish_table(frame, self.classes)

    # ------------------------------------------------------------------------------------------- PNG
    def _read_png(self, root: Path, problems: ProblemLog) -> pd.DataFrame:
        parts = []
        for split, name in (("train", "stage_1_train_images.csv"), ("test", "stage_1_test_images.csv")):
            path = root / name
            if not path.is_file():
                continue
            part = pd.read_csv(path, dtype=str)
            part.columns = [c.strip() for c in part.columns]
            if len(part.columns) < 2:
                raise DatasetLayoutError(f"{path}: expected columns new_filename, ImageId, has_pneumo; found "
                                         f"{', '.join(repr(c) for c in part.columns)}")
            file_col = "new_filename" if "new_filename" in part else ("image_path" if "image_path" in part
                                                                       else part.columns[0])
            label_col = "has_pneumo" if "has_pneumo" in part else part.columns[-1]
            files = part[file_col].str.strip().map(lambda s: Path(s).name)
            ids = part["ImageId"].str.strip() if "ImageId" in part else files.map(lambda s: Path(s).stem)
            parts.append(pd.DataFrame({"file": files, "image_id": ids, "label": part[label_col].str.strip(),
                                       "split": split}))
        if not parts:  # no CSVs: parse the file names
            names = sorted(p.name for p in (root / "png_images").glob("*.png"))
            rows = []
            for fn in names:
                m = PNG_NAME.match(fn)
                if m is None:
                    problems.add("unknown label", f"{fn}: name not <n>_<train|test>_<0|1>_.png")
                    continue
                rows.append({"file": fn, "image_id": Path(fn).stem, "label": m.group(2), "split": m.group(1)})
            parts.append(pd.DataFrame(rows, columns=["file", "image_id", "label", "split"]))
        data = pd.concat(parts, ignore_index=True)
        label = pd.to_numeric(data["label"], errors="coerce")
        for fn in data.loc[~label.isin([0, 1]), "file"]:
            problems.add("unknown label", f"{fn}: has_pneumo not 0/1", root)
        frame = pd.DataFrame({"image_id": data["image_id"], "patient_id": data["image_id"],
                              "Pneumothorax": label.where(label.isin([0, 1])), "split": data["split"]})
        frame["path"] = [str(root / "png_images" / f) for f in data["file"]]
        frame["mask_path"] = [str(root / "png_masks" / f) for f in data["file"]]
        frame["mask_rle"] = None
        return finish_table(frame, self.classes)

    def facts(self, table: pd.DataFrame) -> dict[str, Any]:
        """Positive images and (RLE release) mask rows."""
        out: dict[str, Any] = {"positive_images": int((table["Pneumothorax"] == 1).sum())}
        if "n_mask_rows" in table:
            out["mask_rows"] = int(table["n_mask_rows"].sum())
            out["rle_rows"] = int(table["n_mask_rows"].clip(lower=1).sum())
        out["variant"] = "png" if table["mask_path"].notna().any() else "rle"
        return out
