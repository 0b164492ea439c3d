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


def make_record(model: str, task: str, seed: int, values: dict[str, float | None],
                label_fraction: float | None = None, ci: float = 0.02, synthetic: bool = True) -> dict[str, Any]:
    """A minimal schema-valid record; ``values`` maps summary metrics to values (None: undefined)."""
    spec = TASKS[task]
    summary = {m: {"value": v, "ci_low": None if v is None else v - ci, "ci_high": None if v is None else v + ci}
               for m, v in values.items()}
    subset = None
    if spec.setting in ("ft", "seg"):
        subset = {"fraction": label_fraction, "seed": seed, "path": "subset.txt", "n_images": 10,
                  "sha256": sha(f"subset-{task}-{label_fraction}-{seed}")}
    record = {
        "schema": "cxrbench.result/1", "protocol": "cxrbench-eval/1",
        "model": {"name": model, "checkpoint": f"/ckpt/{model}", "checkpoint_sha256": sha(f"ckpt-{model}")},
        "task": {"name": task, "dataset": spec.dataset, "setting": spec.setting, "notes": spec.notes,
                 "classes": [{"label": c.label} for c in spec.classes]},
        "label_fraction": label_fraction, "seed": seed, "summary": summary, "metrics": {},
        "selection": {"chosen_on": "val"}, "training": None, "n_eval": 20,
        "data": {"root": "/synth", "synthetic": synthetic,
                 "splits": {s: {"sha256": sha(f"{task}-{s}"), "n_images": 20} for s in ("train", "val", "test")},
                 "subset": subset, "skipped_files": []},
        "environment": {"versions": {"cxrbench": "0.1.0"}, "device": "cpu", "git_commit": None},
        "artifacts": [], "created": "2025-01-01T00:00:00+00:00", "wall_time_s": 1.0,
    }
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
    """Two models on a zs task and a seg task (two fractions, two/three seeds)."""
    root = tmp_path / "board" / "results"
    for seed, (a, b) in enumerate([(0.70, 0.60), (0.72, 0.62)]):
        write_record(root, make_record("medslip", "rsna-zs", seed, full("zs", a)))
        write_record(root, make_record("clip", "rsna-zs", seed, full("zs", b)))
    for frac in (0.1, 1.0):
        for seed in (0, 1, 2):
            write_record(root, make_record("medslip", "siim-seg", seed, full("seg", 0.5 + frac / 10 + seed / 100),
                                           label_fraction=frac))
        write_record(root, make_record("clip", "siim-seg", 0, full("seg", 0.4 + frac / 10), label_fraction=frac))
    return root
