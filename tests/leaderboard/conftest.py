"""Builders of small synthetic result records (valid against the schema), so that tests need no training."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from cxrbench.results import record_path, validate_record
from cxrbench.tasks.specs import METRICS, TASKS


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


#: Default trivial segmentation references of :func:`make_record` (metric -> value).
REFERENCES = {"predict_nothing": {"mean_dice": 0.30, "mean_dice_positive": 0.0},
              "predict_everything": {"mean_dice": 0.05, "mean_dice_positive": 0.20}}


def make_record(model: str, task: str, seed: int | None, values: dict[str, float | None],
                label_fraction: float | None = None, ci: float = 0.02, synthetic: bool = True,
                protocol: str = "cxrbench-eval/2", threshold_on: str = "val", weights: str = "trained",
                training_mode: str | None = None, references: dict[str, dict[str, float]] | None = None,
                skipped: int = 0) -> dict[str, Any]:
    """A minimal schema-valid record; ``values`` maps summary metrics to values (None: undefined).

    Protocol v2 by default (``evaluation`` block, ``model.weights``, ``data.kind``); ``protocol="cxrbench-eval/1"``
    gives a record as v1 wrote it. Segmentation records carry ``references`` (default :data:`REFERENCES`)."""
    spec = TASKS[task]
    summary = {m: {"value": v, "ci_low": None if v is None else v - ci, "ci_high": None if v is None else v + ci}
               for m, v in values.items()}
    subset = None
    if spec.setting in ("ft", "seg"):
        subset = {"fraction": label_fraction, "seed": seed, "path": "subset.txt", "n_images": 10,
                  "sha256": sha(f"subset-{task}-{label_fraction}-{seed}")}
    v2 = protocol != "cxrbench-eval/1"
    metrics: dict[str, Any] = {}
    if spec.setting == "seg" and v2:
        refs = REFERENCES if references is None else references
        metrics["references"] = {name: {m: {"value": v, "ci_low": v, "ci_high": v} for m, v in per.items()}
                                 for name, per in refs.items()}
    record = {
        "schema": "cxrbench.result/1", "protocol": protocol,
        "model": {"name": model, "checkpoint": f"/ckpt/{model}", "checkpoint_sha256": sha(f"ckpt-{model}")},
        "task": {"name": task, "dataset": spec.dataset, "setting": spec.setting, "notes": spec.notes,
                 "classes": [{"label": c.label} for c in spec.classes]},
        "label_fraction": label_fraction, "seed": seed, "summary": summary, "metrics": metrics,
        "selection": {"chosen_on": threshold_on}, "training": None, "n_eval": 20,
        "data": {"root": "/synth", "synthetic": synthetic,
                 "splits": {s: {"sha256": sha(f"{task}-{s}"), "n_images": 20} for s in ("train", "val", "test")},
                 "subset": subset, "skipped_files": [{"path": f"bad{i}.png", "reason": "x"} for i in range(skipped)]},
        "environment": {"versions": {"cxrbench": "0.1.0"}, "device": "cpu", "git_commit": None},
        "artifacts": [], "created": "2025-01-01T00:00:00+00:00", "wall_time_s": 1.0,
    }
    if v2:
        if spec.setting in ("ft", "seg") and training_mode is None:
            training_mode = "full fine-tuning" if spec.setting == "ft" else "segmentation (U-Net decoder)"
        record["model"]["weights"] = weights
        record["data"].update(kind="synthetic" if synthetic else "real", split_seed=0)
        record["evaluation"] = {"deterministic": spec.setting in ("zs", "ground"), "threshold_on": threshold_on,
                                "training_mode": training_mode,
                                "grounding_postprocess": "protocol" if spec.setting == "ground" else None,
                                "split_seed": 0, "split_file": None}
    validate_record(record)
    return record


def write_record(root: Path, record: dict[str, Any]) -> Path:
    path = record_path(root, record["model"]["name"], record["task"]["name"], record["label_fraction"],
                       record["seed"])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    return path


def full(setting: str, base: float) -> dict[str, float]:
    """Every metric of a setting, increasing from ``base``."""
    return {m: round(base + 0.01 * i, 4) for i, m in enumerate(METRICS[setting])}


@pytest.fixture
def results_dir(tmp_path: Path) -> Path:
    """Two models on a zs task (deterministic: one record each) and a seg task (two fractions, one/three seeds)."""
    root = tmp_path / "board" / "results"
    write_record(root, make_record("medslip", "rsna-zs", None, full("zs", 0.70)))
    write_record(root, make_record("clip", "rsna-zs", None, full("zs", 0.60)))
    for frac in (0.1, 1.0):
        for seed in (0, 1, 2):
            write_record(root, make_record("medslip", "siim-seg", seed, full("seg", 0.5 + frac / 10 + seed / 100),
                                           label_fraction=frac))
        write_record(root, make_record("clip", "siim-seg", 0, full("seg", 0.4 + frac / 10), label_fraction=frac))
    return root
