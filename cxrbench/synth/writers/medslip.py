"""MeDSLIP pre-training files (data-formats.md section 7) on top of a synthetic MIMIC-CXR-JPG folder.

``train.json`` / ``valid.json`` / ``test.json``: one JSON object ``{image path: {"labels_id": i}}`` (key order =
sample order; paths relative to the dataset root, so remap the prefix to the root when loading),
``landmark_observation_adj_mtx.npy``: float64 ``(N_studies, 51, 75)`` in {-1, 0, 1}, axis 0 indexed by
``labels_id``; ``landmark_observation_sids.npy``: the study ids (``<U...``) in the same order.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from . import mimic
from ._common import Tick

_JSON_NAME = {"train": "train.json", "validate": "valid.json", "test": "test.json"}


def write(root: Path, n: int, size: int, seed: int, tick: Tick) -> dict:
    """Write a synthetic MIMIC folder of ``n`` studies plus the pre-training files; returns a summary."""
    summary = mimic.write(root, n, size, seed, tick)
    studies, matrices = summary.pop("_studies"), summary.pop("_matrices")
    ann: dict[str, dict[str, dict[str, int]]] = {k: {} for k in _JSON_NAME}
    for i, (path, _study, split) in enumerate(studies):
        ann[split][path] = {"labels_id": i}
    for split, name in _JSON_NAME.items():
        (root / name).write_text(json.dumps(ann[split]), encoding="utf-8")
    np.save(root / "landmark_observation_adj_mtx.npy", np.stack(matrices).astype(np.float64))
    np.save(root / "landmark_observation_sids.npy", np.array([f"s{s}" for _, s, _ in studies]))
    summary["pretrain"] = {name: len(ann[split]) for split, name in _JSON_NAME.items()}
    return summary
