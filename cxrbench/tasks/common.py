"""Data preparation shared by the tasks: tables, split files, subsets, cached images, regions."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from cxrbench.data.cache import ImageCache, build_cache
from cxrbench.data.registry import get_dataset
from cxrbench.phases import phase
from cxrbench.tasks.specs import TaskSpec
from medslip.augment import normalize_batch

EVAL_BATCH = 32


@dataclass
class TaskData:
    """Everything a task run reads: the sample table, cached images, where its split files are."""

    spec: TaskSpec
    root: Path
    synthetic: bool
    table: pd.DataFrame
    cache: ImageCache
    splits: dict[str, dict[str, Any]]
    skipped: list[dict[str, str]] = field(default_factory=list)

    def rows(self, split: str) -> pd.DataFrame:
        return self.table[self.table["split"] == split].reset_index(drop=True)

    def labels(self, rows: pd.DataFrame) -> np.ndarray:
        """N x C float labels (1 / 0 / NaN) of the task's classes."""
        return rows[list(self.spec.labels)].to_numpy(dtype=float)

    def images(self, rows: pd.DataFrame) -> Tensor:
        """N x 3 x S x S normalised images from the cache: :func:`medslip.augment.eval_transform` of each, as
        one batch (:func:`medslip.augment.normalize_batch`, bitwise equal; the cache is already at the size, so
        the transform's resize is the identity)."""
        index = np.fromiter((self.cache.index_of(p) for p in rows["path"]), dtype=np.int64, count=len(rows))
        return normalize_batch(self.cache.pixels[index]) if len(index) else \
            torch.zeros(0, 3, self.cache.size, self.cache.size)


#: Files the synthetic corpus writes in every dataset folder it generates (``cxrbench synth``).
SYNTHETIC_MARKERS = ("synthcxr_truth.jsonl", "synthcxr_manifest.json")


def is_synthetic_root(root: Path) -> bool:
    """Whether ``root`` is a folder written by the synthetic corpus generator (its truth/manifest files)."""
    return any((root / name).is_file() for name in SYNTHETIC_MARKERS)


def dataset_root(spec: TaskSpec, data_root: str | Path | None, progress: bool = True) -> tuple[Path, bool]:
    """The folder to read, generating the embedded synthetic dataset when none is given; and whether it holds
    synthetic data (also true for a ``--data-root`` the synthetic generator wrote)."""
    if data_root is not None:
        root = Path(data_root)
        if not root.exists():
            raise FileNotFoundError(f"--data-root {root} does not exist")
        return root, is_synthetic_root(root)
    from cxrbench.synth import default_root

    return default_root(spec.dataset, progress=progress), True


def load_task_data(spec: TaskSpec, data_root: str | Path | None, image_size: int, seed: int = 0,
                   split_file: str | Path | None = None, skip_bad_images: bool = False,
                   progress: bool = True, table: pd.DataFrame | None = None) -> TaskData:
    """Load the table, draw the splits (``seed``: the split seed), preflight and cache the images.

    ``table``: the dataset's table already loaded from ``data_root`` with this ``seed`` and ``split_file`` (as
    :func:`cxrbench.run.validate_data_root` does before a model is loaded), so it is not read twice.

    Everything here depends on (task, data root, image size, split seed, split file) only, never on a run's
    seed or label fraction: :func:`cxrbench.run.run` calls it once for all of its records, and a later job over
    unchanged files finds the preflight outcome and the image cache on disk (no header read, no decode).
    The split files are not written here (see :func:`with_split_files`).
    """
    from cxrbench.data.preflight import preflight

    root, synthetic = dataset_root(spec, data_root, progress)
    if table is None:
        with phase("table"):  # the dataset's table and its splits (drawn with the split seed where not given)
            table = get_dataset(spec.dataset).load(root, seed=seed, split_file=split_file)
    missing = [c for c in spec.labels if c not in table.columns]
    if missing:
        raise ValueError(f"{spec.dataset} table lacks the task's classes {missing}")
    checked = preflight(table["path"].tolist(), skip_bad=skip_bad_images, progress=progress,
                        cache_size=image_size, dataset=spec.dataset)  # decodes (fills the cache) too
    skipped = checked.to_record()
    if skipped:
        bad = {s["path"] for s in skipped}
        table = table[~table["path"].isin(bad)].reset_index(drop=True)
    with phase("cache"):
        cache = build_cache(table["path"].tolist(), image_size, spec.dataset, progress=progress)
    return TaskData(spec, root, synthetic, table, cache, {}, skipped)


def with_split_files(data: TaskData, work_dir: Path) -> TaskData:
    """``data`` with its split files written (and fingerprinted) under ``work_dir/splits`` for one record."""
    from dataclasses import replace

    from cxrbench.data.splits import write_split_files

    with phase("splits"):
        written = write_split_files(data.table, work_dir / "splits")
    splits = {name: {"path": str(s.path), "sha256": s.sha256, "n_images": s.n_images} for name, s in written.items()}
    return replace(data, splits=splits)


def prepare(spec: TaskSpec, data_root: str | Path | None, image_size: int, work_dir: Path, seed: int = 0,
            split_file: str | Path | None = None, skip_bad_images: bool = False,
            progress: bool = True) -> TaskData:
    """:func:`load_task_data`, then the split files written under ``work_dir``."""
    return with_split_files(load_task_data(spec, data_root, image_size, seed, split_file, skip_bad_images,
                                           progress), work_dir)


def summary_entries(entries: dict[str, dict[str, Any]], metrics: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """The record's headline ``{metric: {value, ci_low, ci_high}}`` from full metric entries."""
    return {m: {k: (entries.get(m) or {}).get(k) for k in ("value", "ci_low", "ci_high")} for m in metrics}


@torch.no_grad()
def batched(fn, data: TaskData, rows: pd.DataFrame, batch_size: int = EVAL_BATCH) -> Tensor:
    """Apply ``fn(images) -> B x ...`` over ``rows`` in batches; concatenates on CPU."""
    outs = []
    for start in range(0, len(rows), batch_size):
        outs.append(fn(data.images(rows.iloc[start : start + batch_size])).cpu())
    return torch.cat(outs) if outs else torch.zeros(0)


def region_masks(data: TaskData, rows: pd.DataFrame, label: str, size: int) -> np.ndarray:
    """N x S x S bool ground-truth regions of ``label`` (boxes rasterised, or SIIM masks resized)."""
    from cxrbench.data.base import label_frame
    from cxrbench.metrics.grounding import boxes_to_mask
    from cxrbench.metrics.segmentation import resize_masks_nearest

    out = np.zeros((len(rows), size, size), dtype=bool)
    for i, row in enumerate(rows.itertuples(index=False)):
        row = row._asdict()
        if data.spec.region == "masks":
            from cxrbench.data.siim import load_mask

            mask = load_mask(row)
            if mask.any():
                out[i] = resize_masks_nearest(mask[None], (size, size))[0]
            continue
        boxes = row.get("boxes") or []
        labels = row.get("box_labels") or [label] * len(boxes)
        mine = [b for b, lab in zip(boxes, labels) if lab == label]
        if not mine:
            continue
        frame = label_frame(data.spec.dataset, row)  # the dataset's box frame (NIH/RSNA: 1024), not the file's
        out[i] = boxes_to_mask(np.asarray(mine, dtype=float), frame, (size, size))
    return out
