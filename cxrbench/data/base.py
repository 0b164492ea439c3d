"""The dataset adapter contract and the uniform sample table.

Every adapter turns a dataset folder, as the user downloaded it, into one :class:`pandas.DataFrame` with one
row per image and these columns (``SAMPLE_COLUMNS``), plus one float column per class label:

==============  ==========================================================================================
``image_id``    str, unique within the dataset (the id used in split and subset files)
``path``        str, absolute path of the image file (where it is, or where it is expected to be)
``patient_id``  str
``view``        str or None (``PA``, ``AP``, ``LATERAL`` ...)
``split``       ``train`` / ``val`` / ``test``
``<class>``     float per class: 1.0 positive, 0.0 negative, NaN unknown
``boxes``       list of ``(x, y, w, h)`` in pixels of the dataset's label frame (``label_frame``: 1024 x 1024
                for NIH, RSNA and SIIM, whatever size the image files on disk have); ``[]`` when the dataset
                has boxes but this image none; ``None`` when the dataset has no boxes
``box_labels``  list of class names parallel to ``boxes`` (or ``None``)
``mask_rle``    SIIM: tuple of RLE strings of the image (``()`` for an empty mask); else ``None``
``mask_path``   SIIM PNG release: path of the 0/255 mask PNG; else ``None``
``width``       int or NaN: width of the image file when the label files state it (MIMIC metadata); NaN
                otherwise.  Boxes and RLE masks are in the adapter's declared ``label_frame`` (the frame of
                the images as the dataset was released), never in the frame of a resized mirror on disk.
``height``      int or NaN
==============  ==========================================================================================

Adapters may add columns (``sex``, ``age``, ``report_path``, ``labels_id`` ...).

Problems found while reading are of two kinds: *errors* (``error_kinds``: a label that cannot be read, a
malformed box or RLE row, a duplicate id, an image in no official split...) make :meth:`BaseAdapter.load`
raise :class:`DataProblemError` naming the file, the count and the first examples; the others are
*warnings*, kept in ``table.attrs["warnings"]`` (and so in the result record).  ``cxrbench data check``
reports both, without a traceback.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np
import pandas as pd

__all__ = [
    "SAMPLE_COLUMNS",
    "SPLIT_NAMES",
    "BaseAdapter",
    "CheckReport",
    "DatasetAdapter",
    "DataProblemError",
    "DatasetLayoutError",
    "ERROR_KINDS",
    "ProblemLog",
    "label_frame",
    "require_columns",
    "count_table",
    "empty_columns",
    "find_file",
    "finish_table",
    "index_files",
]

SAMPLE_COLUMNS: tuple[str, ...] = (
    "image_id", "path", "patient_id", "view", "split",
    "boxes", "box_labels", "mask_rle", "mask_path", "width", "height",
)
SPLIT_NAMES: tuple[str, ...] = ("train", "val", "test")


class DatasetLayoutError(FileNotFoundError):
    """The folder does not look like any accepted variant of the dataset (the message says what is missing)."""


#: Problem kinds that make ``load()`` fail: the labels could not be read as the dataset defines them.
ERROR_KINDS: frozenset[str] = frozenset({
    "duplicate image id", "malformed box", "malformed RLE", "malformed line", "unknown label",
    "image in no split list", "image in no split",
})


class DataProblemError(ValueError):
    """Label files with error-kind problems; the one-line message names the file, the count and examples."""

    def __init__(self, message: str, problems: dict[str, dict[str, Any]]) -> None:
        super().__init__(message)
        self.problems = problems


def require_columns(path: Path | str, columns: Any, expected: tuple[str, ...]) -> None:
    """Raise :class:`DatasetLayoutError` naming the file, the columns found and the columns expected."""
    found = [str(c) for c in columns]
    missing = [c for c in expected if c not in found]
    if missing:
        raise DatasetLayoutError(
            f"{path}: missing column(s) {', '.join(repr(c) for c in missing)}; expected {', '.join(expected)}; "
            f"found {', '.join(repr(c) for c in found) or 'none'}"
        )


class ProblemLog:
    """Collects problems by kind: counts every occurrence, keeps the first few examples of each kind
    and the first file each kind was found in."""

    def __init__(self, examples_per_kind: int = 10) -> None:
        self.examples_per_kind = examples_per_kind
        self.counts: Counter[str] = Counter()
        self.examples: dict[str, list[str]] = {}
        self.files: dict[str, str] = {}

    def add(self, kind: str, message: str, file: str | Path | None = None) -> None:
        """Record one problem of ``kind`` (for example ``missing image``) described by ``message``."""
        self.counts[kind] += 1
        bucket = self.examples.setdefault(kind, [])
        if len(bucket) < self.examples_per_kind:
            bucket.append(message)
        if file is not None:
            self.files.setdefault(kind, str(file))

    def split(self, error_kinds: frozenset[str]) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
        """``(errors, warnings)`` as :meth:`to_dict` gives them."""
        everything = self.to_dict()
        errors = {k: v for k, v in everything.items() if k in error_kinds}
        return errors, {k: v for k, v in everything.items() if k not in error_kinds}

    def raise_errors(self, error_kinds: frozenset[str], where: str | Path, dataset: str) -> None:
        """Raise :class:`DataProblemError` when a problem of an error kind was recorded."""
        errors, _ = self.split(error_kinds)
        if not errors:
            return
        kind, entry = next(iter(errors.items()))
        file = entry.get("file") or str(where)
        examples = "; ".join(entry["examples"][:3])
        more = f" (and {len(errors) - 1} more kind(s): {', '.join(list(errors)[1:])})" if len(errors) > 1 else ""
        raise DataProblemError(
            f"{file}: {entry['count']} {kind} problem(s), e.g. {examples}{more}; "
            f"`cxrbench data check {dataset} --root {where} --labels-only` lists them all", errors)

    def __bool__(self) -> bool:
        return bool(self.counts)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """``{kind: {"count": n, "examples": [...]}}``."""
        out: dict[str, dict[str, Any]] = {}
        for k, n in sorted(self.counts.items()):
            out[k] = {"count": n, "examples": list(self.examples[k])}
            if k in self.files:
                out[k]["file"] = self.files[k]
        return out


@dataclass
class CheckReport:
    """What ``check`` found: counts per split and class, dataset facts, and every problem by kind."""

    dataset: str
    root: str
    labels_only: bool
    classes: tuple[str, ...]
    n_images: int = 0
    n_patients: int = 0
    counts: dict[str, dict[str, int]] = field(default_factory=dict)  # split -> images/patients/<class>
    facts: dict[str, Any] = field(default_factory=dict)
    problems: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when no problem was found."""
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict of the whole report."""
        return {
            "dataset": self.dataset, "root": self.root, "labels_only": self.labels_only, "ok": self.ok,
            "n_images": self.n_images, "n_patients": self.n_patients, "classes": list(self.classes),
            "counts": self.counts, "facts": self.facts, "problems": self.problems,
        }


@runtime_checkable
class DatasetAdapter(Protocol):
    """What the harness needs from a dataset (see the module docstring for the table)."""

    name: str
    classes: tuple[str, ...]
    description: str

    def load(self, root: str | Path, split: str | None = None) -> pd.DataFrame:
        """The uniform sample table of the dataset at ``root`` (all splits, or only ``split``)."""
        ...

    def check(self, root: str | Path, labels_only: bool = False) -> CheckReport:
        """Validate the folder at ``root`` and count images per split and class."""
        ...


def find_file(root: Path, names: tuple[str, ...], what: str, required: bool = True) -> Path | None:
    """The first of ``names`` (relative paths) that exists under ``root``; raise a clear error if none does."""
    for name in names:
        candidate = root / name
        if candidate.is_file():
            return candidate
    if required:
        raise DatasetLayoutError(f"{root}: no {what} found (looked for: {', '.join(names)})")
    return None


def index_files(root: Path, suffixes: tuple[str, ...], under: tuple[str, ...] = ()) -> dict[str, str]:
    """Map file name -> path (a string) for every file with one of ``suffixes`` below ``root`` (any depth).

    ``under`` restricts the walk to those sub-folders when given.  When a name occurs twice the
    lexicographically first path wins, so the result does not depend on directory listing order.
    Paths are joined as strings: a ``Path`` per file costs seconds at NIH size (112k files).
    """
    import os

    found: dict[str, str] = {}
    starts = [root / u for u in under] if under else [root]
    lowered = tuple(s.lower() for s in suffixes)
    for start in starts:
        if not start.is_dir():
            continue
        for dirpath, dirnames, filenames in os.walk(start):
            dirnames.sort()
            prefix = os.path.join(dirpath, "")
            for fn in sorted(filenames):
                if fn.lower().endswith(lowered) and fn not in found:
                    found[fn] = prefix + fn
    return found


def _box_problem(box: Any, frame: tuple[int, int] | None) -> str | None:
    """What is wrong with one ``(x, y, w, h)`` box in a ``(height, width)`` frame, or None."""
    try:
        x, y, w, h = (float(v) for v in box)
    except (TypeError, ValueError):
        return "not four numbers"
    if not all(math.isfinite(v) for v in (x, y, w, h)):
        return "not finite"
    if w <= 0 or h <= 0 or x < 0 or y < 0:
        return "negative origin or empty size"
    if frame is not None and (x + w > frame[1] + 0.5 or y + h > frame[0] + 0.5):
        return f"outside the {frame[1]}x{frame[0]} label frame"
    return None


def _valid_box(box: Any) -> bool:
    return _box_problem(box, None) is None


def label_frame(dataset: str | Any, row: Any = None) -> tuple[int, int]:
    """``(height, width)`` of the frame the boxes / RLE masks of ``dataset`` are stated in.

    The adapter's declared ``label_frame`` when it has one (1024 x 1024 for NIH, RSNA and SIIM, whatever the
    size of the files on disk); else the row's ``height``/``width`` when known; else the image file's header.
    """
    if isinstance(dataset, str):
        from cxrbench.data.registry import get_dataset

        dataset = get_dataset(dataset)
    frame = getattr(dataset, "label_frame", None)
    if frame is not None:
        return int(frame[0]), int(frame[1])
    if row is None:
        raise ValueError(f"{getattr(dataset, 'name', dataset)}: no declared label frame and no sample row")
    h, w = row.get("height"), row.get("width")
    if h is not None and w is not None and not (isinstance(h, float) and math.isnan(h)) and \
            not (isinstance(w, float) and math.isnan(w)):
        return int(h), int(w)
    from cxrbench.data.images import read_header

    header = read_header(row["path"])
    return header.height, header.width


class BaseAdapter:
    """Shared machinery: subclasses implement :meth:`read` (labels -> table); this class adds splits, checks.

    ``read(root, problems, locate_images)`` returns the sample table with ``split`` holding the official
    split where the dataset has one (``None`` elsewhere); :meth:`load` then completes the splits (seeded,
    patient-level, stratified; a validation split is always carved) and filters.
    """

    name: ClassVar[str] = ""
    classes: ClassVar[tuple[str, ...]] = ()
    description: ClassVar[str] = ""
    has_boxes: ClassVar[bool] = False
    has_masks: ClassVar[bool] = False
    #: ``(height, width)`` of the frame boxes and RLE masks are stated in (the released image size), or None
    #: when the dataset has no such labels (then the image file's own size is used)
    label_frame: ClassVar[tuple[int, int] | None] = None
    #: problem kinds that make :meth:`load` raise (the others are warnings kept in ``table.attrs``)
    error_kinds: ClassVar[frozenset[str]] = ERROR_KINDS
    #: fraction of patients put in the test split when the dataset has no official test split
    test_fraction: ClassVar[float] = 0.2
    #: fraction of the training patients carved into validation when the dataset has no validation split
    val_fraction: ClassVar[float] = 0.1

    # -- to implement ------------------------------------------------------------------------------------
    def read(self, root: Path, problems: ProblemLog, locate_images: bool = True) -> pd.DataFrame:
        """Read the label files at ``root`` into the sample table (``split`` = official split or None)."""
        raise NotImplementedError

    def facts(self, table: pd.DataFrame) -> dict[str, Any]:
        """Dataset-specific numbers for the check report (boxes, positive patients, ...)."""
        return {}

    def validate(self, table: pd.DataFrame, problems: ProblemLog) -> None:
        """Dataset-specific checks beyond the shared ones (override to add)."""

    # -- contract -----------------------------------------------------------------------------------------
    def load(
        self,
        root: str | Path,
        split: str | None = None,
        *,
        seed: int = 0,
        split_file: str | Path | None = None,
        locate_images: bool = True,
    ) -> pd.DataFrame:
        """The uniform sample table of the dataset at ``root``.

        ``split``: ``train`` / ``val`` / ``test`` or ``None`` for all rows.  ``seed`` drives the splits the
        dataset does not define; ``split_file`` (one id per line, or a CSV with an ``ID``/``image_id``
        column) overrides the test split.  ``locate_images=False`` skips indexing the image files (paths
        are then where the standard layout expects them).
        """
        from cxrbench.data.splits import complete_splits

        if split is not None and split not in SPLIT_NAMES:
            raise ValueError(f"split must be one of {SPLIT_NAMES} or None, got {split!r}")
        root_path = Path(root).expanduser().resolve()
        if not root_path.is_dir():
            raise DatasetLayoutError(f"{root}: not a folder (the {self.name} dataset folder was expected)")
        problems = ProblemLog()
        table = self.read(root_path, problems, locate_images)
        self._label_problems(table, problems)
        problems.raise_errors(self.error_kinds, root_path, self.name)
        table = complete_splits(
            table, self.classes, seed=seed, split_file=split_file,
            val_fraction=self.val_fraction, test_fraction=self.test_fraction,
        )
        if split is not None:
            table = table[table["split"] == split].reset_index(drop=True)
        table.attrs["warnings"] = problems.split(self.error_kinds)[1]
        return table

    def _label_problems(self, table: pd.DataFrame, problems: ProblemLog) -> None:
        """The checks shared by :meth:`load` and :meth:`check`: duplicate ids, boxes, the adapter's own."""
        for image_id in table.loc[table["image_id"].duplicated(), "image_id"]:
            problems.add("duplicate image id", str(image_id))
        if self.has_boxes:
            for image_id, boxes in zip(table["image_id"], table["boxes"], strict=True):
                for box in boxes or ():
                    reason = _box_problem(box, self.label_frame)
                    if reason:
                        problems.add("malformed box", f"{image_id}: {tuple(box)} {reason}",
                                     table.attrs.get("box_file"))
        self.validate(table, problems)

    def check(
        self, root: str | Path, labels_only: bool = False, *, seed: int = 0, workers: int | None = None,
        decode: bool = False,
    ) -> CheckReport:
        """Validate the folder: label files, duplicate ids, boxes, masks and (unless ``labels_only``) images.

        Image problems are found by reading every image header, or with ``decode`` by decoding every image
        (finds truncated files; see :mod:`cxrbench.data.preflight`).
        """
        from cxrbench.data.preflight import preflight
        from cxrbench.data.splits import complete_splits

        root_path = Path(root).expanduser().resolve()
        if not root_path.is_dir():
            raise DatasetLayoutError(f"{root}: not a folder (the {self.name} dataset folder was expected)")
        problems = ProblemLog()
        table = self.read(root_path, problems, locate_images=not labels_only)
        self._label_problems(table, problems)
        table = complete_splits(
            table, self.classes, seed=seed,
            val_fraction=self.val_fraction, test_fraction=self.test_fraction,
        )
        if not labels_only:
            result = preflight(table["path"].tolist(), skip_bad=True, workers=workers, progress=False,
                               decode=decode)
            for path, reason in result.skipped:
                kind = "missing image" if "not found" in reason else "unreadable image"
                problems.add(kind, reason)
            if self.has_masks and "mask_path" in table:
                for mask in table["mask_path"].dropna():
                    if not Path(mask).is_file():
                        problems.add("missing mask", str(mask))
        return CheckReport(
            dataset=self.name, root=str(root_path), labels_only=labels_only, classes=self.classes,
            n_images=len(table), n_patients=int(table["patient_id"].nunique()),
            counts=count_table(table, self.classes), facts=self.facts(table), problems=problems.to_dict(),
        )


def count_table(table: pd.DataFrame, classes: tuple[str, ...]) -> dict[str, dict[str, int]]:
    """Images, patients and positives per class, for each split and for ``all``."""
    out: dict[str, dict[str, int]] = {}
    groups = [(s, table[table["split"] == s]) for s in SPLIT_NAMES] + [("all", table)]
    for name, part in groups:
        row = {"images": len(part), "patients": int(part["patient_id"].nunique())}
        for cls in classes:
            row[cls] = int(np.nansum(part[cls].to_numpy(dtype=float) == 1.0))
        out[name] = row
    return out


def empty_columns(n: int) -> dict[str, list[Any]]:
    """``None`` defaults for the optional sample-table columns of an ``n``-row table."""
    return {
        "view": [None] * n, "split": [None] * n, "boxes": [None] * n, "box_labels": [None] * n,
        "mask_rle": [None] * n, "mask_path": [None] * n, "width": [np.nan] * n, "height": [np.nan] * n,
    }


def finish_table(frame: pd.DataFrame, classes: tuple[str, ...]) -> pd.DataFrame:
    """Order the columns (sample columns, classes, extras), fill missing optional columns, set dtypes."""
    n = len(frame)
    for col, default in empty_columns(n).items():
        if col not in frame:
            frame[col] = default
    for col in ("image_id", "path", "patient_id"):
        frame[col] = frame[col].astype(str)
    for cls in classes:
        frame[cls] = frame[cls].astype(float)
    extras = [c for c in frame.columns if c not in SAMPLE_COLUMNS and c not in classes]
    return frame[list(SAMPLE_COLUMNS) + list(classes) + extras].reset_index(drop=True)
