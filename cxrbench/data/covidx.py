"""COVIDx CXR-4 (``covidx-cxr4``), also CXR-3 / V9 label files.

Root = the Kaggle folder with ``train.txt`` / ``val.txt`` / ``test.txt`` (no header; lines
``<patient id> <filename> <label> <source>``, patient ids may contain spaces in old files) and the image
folders ``train/``, ``val/``, ``test/``.  CXR-3-era names such as ``train_COVIDx9B.txt`` are accepted; those
have no validation file, so validation is carved from train by patient.  Labels: ``positive`` /
``COVID-19`` -> 1, ``negative`` / ``normal`` / ``pneumonia`` -> 0 (the raw text is kept in ``label_text``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from cxrbench.data.base import BaseAdapter, DatasetLayoutError, ProblemLog, finish_table, index_files

__all__ = ["COVIDxAdapter", "parse_covidx_line"]

LABELS = {"positive": 1.0, "covid-19": 1.0, "negative": 0.0, "normal": 0.0, "pneumonia": 0.0}
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def parse_covidx_line(line: str) -> tuple[str, str, str, str] | None:
    """``(patient_id, filename, label, source)`` of one line (split from the right), or None if malformed."""
    tokens = line.split()
    if len(tokens) < 4:
        return None
    return " ".join(tokens[:-3]), tokens[-3], tokens[-2], tokens[-1]


def _label_file(root: Path, split: str) -> Path | None:
    exact = root / f"{split}.txt"
    if exact.is_file():
        return exact
    matches = sorted(p for p in root.glob(f"{split}*.txt") if p.is_file())
    matches += sorted(p for p in root.glob(f"*_{split}*.txt") if p.is_file() and p not in matches)
    return matches[0] if matches else None


class COVIDxAdapter(BaseAdapter):
    """COVIDx CXR-4: ``COVID-19`` positive/negative, official train/val/test files."""

    name: ClassVar[str] = "covidx-cxr4"
    classes: ClassVar[tuple[str, ...]] = ("COVID-19",)
    description: ClassVar[str] = "COVIDx CXR-4: 84,818 PNG/JPG images, COVID-19 positive/negative; official splits"

    def read(self, root: Path, problems: ProblemLog, locate_images: bool = True) -> pd.DataFrame:
        """Parse the split txt files (``header=None``; whitespace split from the right)."""
        rows: list[dict[str, Any]] = []
        found = {s: _label_file(root, s) for s in ("train", "val", "test")}
        if found["train"] is None and found["test"] is None:
            raise DatasetLayoutError(f"{root}: no COVIDx label files (looked for train.txt, val.txt, test.txt)")
        for split, path in found.items():
            if path is None:
                continue
            for k, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
                if not line.strip():
                    continue
                parsed = parse_covidx_line(line)
                if parsed is None:
                    problems.add("malformed line", f"{path.name}:{k}: {line.strip()!r} (expected 4 fields: "
                                 "patient id, file name, label, source)", path)
                    continue
                pid, filename, label, source = parsed
                value = LABELS.get(label.lower(), np.nan)
                if np.isnan(value):
                    problems.add("unknown label", f"{path.name}:{k}: '{label}'", path)
                rows.append({"image_id": filename, "patient_id": pid, "COVID-19": value, "split": split,
                             "label_text": label, "source": source})
        frame = pd.DataFrame(rows, columns=["image_id", "patient_id", "COVID-19", "split", "label_text", "source"])
        located: dict[str, str] | None = None  # indexed on the first image not where expected
        paths = []
        for filename, split in zip(frame["image_id"], frame["split"], strict=True):
            expected = root / split / filename
            if locate_images and not expected.is_file():
                if located is None:
                    located = index_files(root, IMAGE_SUFFIXES)
                expected = located.get(filename, expected)
            paths.append(str(expected))
        frame["path"] = paths
        return finish_table(frame, self.classes)

    def facts(self, table: pd.DataFrame) -> dict[str, Any]:
        """Sources, label texts and patients that appear in more than one split."""
        per_patient = table.groupby("patient_id")["split"].nunique()
        return {
            "sources": {str(k): int(v) for k, v in table["source"].value_counts().items()},
            "label_texts": {str(k): int(v) for k, v in table["label_text"].value_counts().items()},
            "patients_in_several_splits": int((per_patient > 1).sum()),
        }
