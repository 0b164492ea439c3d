"""Label fractions: seeded, patient-level, stratified subsets of the training split, saved and hashed.

``label_fraction_subset(table, classes, frac, seed)`` keeps about ``frac`` of the training images: patients
are grouped by their rarest positive class (see :func:`cxrbench.data.splits.patient_strata`), shuffled with
``numpy.random.default_rng(seed)`` over sorted ids, and taken per group until the group's share of images is
reached.  A class with positives in the training split but none in the subset then gets one positive patient
added.  ``frac`` outside (0, 1] and a subset without any positive are refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from cxrbench.data.splits import patient_strata, write_id_file

__all__ = ["LabelFractionError", "Subset", "label_fraction_subset", "make_subset", "validate_fraction"]


class LabelFractionError(ValueError):
    """A label fraction that cannot be honoured (out of range, or no positive left)."""


@dataclass(frozen=True)
class Subset:
    """A saved label-fraction subset: the file (sorted image ids) and its sha256."""

    fraction: float
    seed: int
    path: Path
    sha256: str
    n_images: int
    n_patients: int
    positives: dict[str, int]


def validate_fraction(frac: float) -> float:
    """Return ``frac`` as float, or raise :class:`LabelFractionError` unless 0 < frac <= 1."""
    try:
        value = float(frac)
    except (TypeError, ValueError):
        raise LabelFractionError(f"label fraction must be a number in (0, 1], got {frac!r}") from None
    if not (0.0 < value <= 1.0) or np.isnan(value):
        raise LabelFractionError(f"label fraction must be in (0, 1], got {frac!r}")
    return value


def label_fraction_subset(
    table: pd.DataFrame, classes: tuple[str, ...], frac: float, seed: int = 0
) -> pd.DataFrame:
    """Rows of the training split forming a seeded, patient-level, stratified subset of about ``frac``."""
    frac = validate_fraction(frac)
    train = table[table["split"] == "train"].reset_index(drop=True)
    if train.empty:
        raise LabelFractionError("the training split is empty")
    patients = train["patient_id"].astype(str)
    pos = train[list(classes)].to_numpy(dtype=float) == 1.0 if classes else np.zeros((len(train), 0), bool)
    if not pos.any():
        raise LabelFractionError("the training split has no positive label for any class; refusing a subset")
    if frac == 1.0:
        return train

    images_per_patient = patients.value_counts()
    strata = patient_strata(train, classes)
    rng = np.random.default_rng(seed)
    chosen: list[str] = []
    for key in sorted(strata.unique(), key=str):
        members = np.array(sorted(strata.index[strata.to_numpy() == key]), dtype=object)
        rng.shuffle(members)
        target = frac * images_per_patient[members].sum()
        taken = 0
        for pid in members:
            if taken >= target:
                break
            chosen.append(pid)
            taken += int(images_per_patient[pid])
    chosen_set = set(chosen)
    # Keep positives of every class that has any in the training split.
    for j, cls in enumerate(classes):
        cls_patients = sorted(set(patients[pos[:, j]]))
        if cls_patients and not chosen_set.intersection(cls_patients):
            chosen_set.add(cls_patients[int(rng.integers(len(cls_patients)))])
    subset = train[patients.isin(chosen_set)].reset_index(drop=True)
    if not (subset[list(classes)].to_numpy(dtype=float) == 1.0).any():
        raise LabelFractionError(f"the {frac} subset (seed {seed}) has no positive label; use a larger fraction")
    return subset


def make_subset(
    table: pd.DataFrame,
    classes: tuple[str, ...],
    frac: float,
    seed: int,
    out_path: str | Path,
) -> tuple[pd.DataFrame, Subset]:
    """Select a label-fraction subset and save its image ids to ``out_path``; return (rows, record)."""
    rows = label_fraction_subset(table, classes, frac, seed)
    sha = write_id_file(rows["image_id"], out_path)
    positives = {c: int((rows[c].to_numpy(dtype=float) == 1.0).sum()) for c in classes}
    record = Subset(
        fraction=float(frac), seed=int(seed), path=Path(out_path), sha256=sha, n_images=len(rows),
        n_patients=int(rows["patient_id"].nunique()), positives=positives,
    )
    return rows, record
