"""The published MeDSLIP / MedKLIP pre-training files (``medslip-pretrain``).

Root = the folder holding ``train.json`` (+ ``valid.json``, ``test.json``; MedKLIP names
``rad_graph_metric_{train,validate,test}.json`` also work) and ``landmark_observation_adj_mtx.npy``
(``(N_studies, 51, 75)``, values in {-1, 0, 1}).  Each JSON maps an image path to ``{"labels_id": row}``.
Keys are paths on the authors' machines: ``path_prefix=(old, new)`` rewrites the prefix; relative paths are
resolved against the root.  Labels: one column per observation (75, MeDSLIP order): 1 if any landmark has
it present, else 0 if any has it absent, else NaN.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from cxrbench.data.base import BaseAdapter, DatasetLayoutError, ProblemLog, finish_table, find_file

__all__ = ["MedslipPretrainAdapter", "observation_labels"]

MATRIX_NAME = "landmark_observation_adj_mtx.npy"
SPLIT_FILES = {
    "train": ("train.json", "rad_graph_metric_train.json", "rad_graph_metric_train_local.json"),
    "val": ("valid.json", "validate.json", "rad_graph_metric_validate.json", "rad_graph_metric_validate_local.json"),
    "test": ("test.json", "rad_graph_metric_test.json", "rad_graph_metric_test_local.json"),
}
_SUBJECT = re.compile(r"(?:^|/)p(\d{8})(?:/|$)")


def _observations() -> tuple[str, ...]:
    from medslip.vocab import OBSERVATIONS

    return tuple(OBSERVATIONS)


def observation_labels(matrix: np.ndarray, chunk: int = 4096) -> tuple[np.ndarray, int]:
    """Per-study observation labels ``(N, 75)`` (1 / 0 / NaN) and the count of cells outside {-1, 0, 1}."""
    n = matrix.shape[0]
    out = np.full((n, matrix.shape[2]), np.nan, dtype=np.float32)
    bad = 0
    for start in range(0, n, chunk):
        block = np.asarray(matrix[start : start + chunk])
        bad += int((~np.isin(block, (-1.0, 0.0, 1.0))).sum())
        present, absent = (block == 1).any(axis=1), (block == 0).any(axis=1)
        part = out[start : start + chunk]
        part[absent] = 0.0
        part[present] = 1.0
    return out, bad


class MedslipPretrainAdapter(BaseAdapter):
    """``train.json`` / ``valid.json`` / ``test.json`` + adjacency matrix, with an image-path prefix remap."""

    name: ClassVar[str] = "medslip-pretrain"
    description: ClassVar[str] = "MeDSLIP pre-training files: train/valid/test.json + landmark_observation_adj_mtx.npy"

    def __init__(self, path_prefix: tuple[str, str] | None = None) -> None:
        self.path_prefix = path_prefix

    @property
    def classes(self) -> tuple[str, ...]:  # type: ignore[override]
        """The 75 MeDSLIP observations."""
        return _observations()

    def with_prefix(self, old: str, new: str) -> "MedslipPretrainAdapter":
        """A copy that rewrites image paths starting with ``old`` to start with ``new``."""
        return MedslipPretrainAdapter((old, new))

    def _remap(self, key: str, root: Path) -> str:
        if self.path_prefix and key.startswith(self.path_prefix[0]):
            key = self.path_prefix[1] + key[len(self.path_prefix[0]) :]
        path = Path(key)
        return str(path if path.is_absolute() or "://" in key else root / path)

    def read(self, root: Path, problems: ProblemLog, locate_images: bool = True) -> pd.DataFrame:
        """Read the JSON annotation files and the matrix (memory-mapped)."""
        matrix_path = find_file(root, (MATRIX_NAME,), "landmark_observation_adj_mtx.npy")
        matrix = np.load(matrix_path, mmap_mode="r")
        n_obs = len(self.classes)
        if matrix.ndim != 3 or matrix.shape[2] != n_obs or matrix.shape[1] != 51:
            raise DatasetLayoutError(f"{matrix_path}: expected shape (N, 51, {n_obs}), got {matrix.shape}")
        labels, bad_cells = observation_labels(matrix)
        if bad_cells:
            problems.add("unknown label", f"{matrix_path.name}: {bad_cells} cells outside {{-1, 0, 1}}", matrix_path)

        rows: list[tuple[str, int, str]] = []
        for split, names in SPLIT_FILES.items():
            path = find_file(root, names, f"{split} annotation file", required=split == "train")
            if path is None:
                continue
            ann = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(ann, dict):
                raise DatasetLayoutError(f"{path}: expected a JSON object mapping image path -> {{labels_id}}")
            for key, value in ann.items():
                label_id = value.get("labels_id") if isinstance(value, dict) else None
                # an integer row of the matrix; 3.0, "3", True or an out-of-range row is an error (load raises:
                # a -1 would silently index the last study's supervision)
                valid = isinstance(label_id, int) and not isinstance(label_id, bool)
                if not valid or not 0 <= label_id < matrix.shape[0]:
                    problems.add("unknown label", f"{key}: labels_id {label_id!r} is not a row of the "
                                 f"{matrix.shape[0]}-row matrix", path)
                    label_id = -1
                rows.append((key, label_id, split))

        keys = [r[0] for r in rows]
        stems = [Path(k).stem for k in keys]
        image_ids = stems if len(set(stems)) == len(stems) else keys
        label_ids = np.array([r[1] for r in rows], dtype=np.int64)
        frame = pd.DataFrame({"image_id": image_ids, "split": [r[2] for r in rows], "key": keys,
                              "labels_id": label_ids})
        patients = []
        for key, label_id in zip(keys, label_ids, strict=True):
            match = _SUBJECT.search(key)
            patients.append(match.group(1) if match else f"study-{label_id}")
        frame["patient_id"] = patients
        frame["path"] = [self._remap(k, root) for k in keys]
        values = np.full((len(rows), n_obs), np.nan, dtype=np.float32)
        ok = label_ids >= 0
        values[ok] = labels[label_ids[ok]]
        obs = pd.DataFrame(values.astype(float), columns=list(self.classes))
        frame = pd.concat([frame, obs], axis=1)
        return finish_table(frame, self.classes)

    def facts(self, table: pd.DataFrame) -> dict[str, Any]:
        """Studies referenced and images per split file."""
        return {"studies": int(table["labels_id"].nunique()),
                "prefix_remap": list(self.path_prefix) if self.path_prefix else None}
