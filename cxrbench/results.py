"""Result records: one JSON file per (model, task, label fraction, seed), validated and atomic."""

from __future__ import annotations

import json
import math
import platform
import subprocess
from importlib import resources
from pathlib import Path
from typing import Any

PROTOCOL = "cxrbench-eval/2"
#: The protocol a record without a ``protocol`` field followed (records written before it was recorded).
LEGACY_PROTOCOL = "cxrbench-eval/1"
#: What ``record["model"]["weights"]`` may say.
WEIGHT_KINDS = ("demo", "trained", "random", "released")


def record_path(out: str | Path, model: str, task: str, label_frac: float | None, seed: int | None) -> Path:
    """``<out>/<model>/<task>/frac-<f>_seed-<s>.json``; ``seed=None`` (deterministic tasks) gives ``seed-none``."""
    frac = "none" if label_frac is None else f"{label_frac:g}"
    return Path(out) / model / task / f"frac-{frac}_seed-{'none' if seed is None else seed}.json"


def record_protocol(record: dict[str, Any]) -> str:
    """The protocol version a record followed (``cxrbench-eval/1`` when it does not say)."""
    return str(record.get("protocol") or LEGACY_PROTOCOL)


def schema() -> dict[str, Any]:
    return json.loads((resources.files("cxrbench") / "schemas" / "result.schema.json").read_text())


def validate_record(record: dict[str, Any]) -> None:
    """Raise ``jsonschema.ValidationError`` when the record does not follow the shipped schema."""
    import jsonschema

    jsonschema.validate(record, schema())


def _clean(obj: Any) -> Any:
    """JSON-ready: NaN/inf become null, numpy scalars become Python numbers, tuples lists."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if hasattr(obj, "item") and not isinstance(obj, (str, bytes)):
        try:
            obj = obj.item()
        except (ValueError, AttributeError):
            return str(obj)
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    return str(obj)


def write_record(path: Path, record: dict[str, Any], overwrite: bool = False) -> Path:
    """Validate and write atomically; refuse to replace an existing record unless ``overwrite``."""
    from medslip.atomic import write_text_atomic

    record = _clean(record)
    validate_record(record)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; use --skip-existing to keep it or --overwrite to replace it")
    write_text_atomic(path, json.dumps(record, indent=2, sort_keys=True) + "\n")
    return path


def git_commit() -> str | None:
    try:
        root = Path(__file__).resolve().parents[1]
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5)
        return (out.stdout.strip() or None) if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def environment(device: str) -> dict[str, Any]:
    import numpy
    import torch

    import cxrbench
    import medslip

    versions = {"cxrbench": cxrbench.__version__, "medslip": medslip.__version__, "torch": torch.__version__,
                "numpy": numpy.__version__, "python": platform.python_version()}
    import sys
    from importlib.metadata import PackageNotFoundError, version

    # a module not imported yet is asked through its installed metadata (the same string for these three):
    # importing monai and open_clip only to read their versions costs seconds per run
    for name, dist in (("torchvision", None), ("monai", "monai"), ("open_clip", "open_clip_torch"),
                       ("sklearn", "scikit-learn")):
        try:
            module = sys.modules.get(name) or (__import__(name) if dist is None else None)
            versions[name] = module.__version__ if module is not None else version(dist)
        except (ImportError, PackageNotFoundError):  # optional package missing: not recorded
            pass
    return {"versions": versions, "device": device, "git_commit": git_commit(), "platform": platform.platform()}
