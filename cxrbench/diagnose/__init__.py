"""``cxrbench diagnose``: does each stream carry what it claims? (``docs/diagnostics.md``)

One record per (model, data source, seed) at ``<out>/<model>/diagnose/<source>_seed-<seed>.json`` (``source`` is
``synthcxr`` for the counterfactual set, else the real dataset's name), validated against
``cxrbench/schemas/diagnose.schema.json`` and written atomically.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import Any

SCHEMA = "cxrbench.diagnose/1"
PROTOCOL = "cxrbench-diagnose/1"
#: Default number of base cases: a few minutes on 2 CPU cores with the demo checkpoint (docs/diagnostics.md).
DEFAULT_N = 48
DEFAULT_SIZE = 256


@dataclass
class DiagnoseOptions:
    checkpoint: Path | None = None
    data_root: Path | None = None
    n: int = DEFAULT_N
    size: int = DEFAULT_SIZE
    seed: int = 0
    site: str = "mimic"
    out: Path = Path("results")
    n_boot: int = 1000
    device: str | None = None
    overwrite: bool = False
    description_file: Path | None = None
    text_encoder: str | None = None
    image_size: int | None = None
    progress: bool = True


def record_path(out: str | Path, model: str, source: str, seed: int) -> Path:
    return Path(out) / model / "diagnose" / f"{source}_seed-{seed}.json"


def schema() -> dict[str, Any]:
    return json.loads((resources.files("cxrbench") / "schemas" / "diagnose.schema.json").read_text())


def validate_diagnose_record(record: dict[str, Any]) -> None:
    """Raise ``jsonschema.ValidationError`` when the record does not follow the diagnose schema, ``ValueError``
    when a summary entry without a value gives no reason (not applicable or undefined)."""
    import jsonschema

    jsonschema.validate(record, schema())
    for key, entry in record["summary"].items():
        if entry["value"] is None and not entry.get("not_applicable") and not \
                (record["metrics"].get(key) or {}).get("undefined_reason"):
            raise ValueError(f"summary {key!r} has no value and says neither why it is not applicable nor undefined")
        if entry.get("not_applicable") and record["not_applicable"].get(key) != entry["not_applicable"]:
            raise ValueError(f"summary {key!r} is not applicable but not listed in not_applicable")


def write_diagnose_record(path: Path, record: dict[str, Any], overwrite: bool = False) -> Path:
    from cxrbench.results import _clean
    from medslip.atomic import write_text_atomic

    record = _clean(record)
    validate_diagnose_record(record)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass --overwrite to replace it")
    write_text_atomic(path, json.dumps(record, indent=2, sort_keys=True) + "\n")
    return path


def _text_file(path: Path, text: str) -> dict[str, Any]:
    from medslip.atomic import write_text_atomic

    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, text)
    return {"path": str(path), "sha256": hashlib.sha256(text.encode()).hexdigest()}


def focal_class_specs(names: list[str]):
    """ClassSpecs (the NIH zero-shot task's: query and prompt sets) of SynthCXR finding names."""
    from cxrbench.synth.findings import CATALOGUE
    from cxrbench.tasks.specs import NIH_CLASSES

    by_label = {c.label: c for c in NIH_CLASSES}
    return [by_label[CATALOGUE[n].nih] for n in names]


def _device(name: str | None):
    import torch

    if name is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for but CUDA is not available on this machine")
    return torch.device(name)


def run_diagnose(model_name: str, options: DiagnoseOptions, adapter=None) -> Path:
    """Diagnose ``model_name`` (on the counterfactual set, or on ``options.data_root``); returns the record path."""
    from cxrbench.models.registry import get_model
    from cxrbench.results import environment

    entry = get_model(model_name)
    source = "synthcxr" if options.data_root is None else None
    if options.data_root is not None:
        from cxrbench.diagnose.real import detect_dataset

        source = detect_dataset(Path(options.data_root))
    path = record_path(options.out, model_name, source, options.seed)
    if path.exists() and not options.overwrite:
        raise FileExistsError(f"{path} exists; pass --overwrite to replace it")
    device = _device(options.device)
    if adapter is None:
        adapter = entry.load(checkpoint=options.checkpoint, description_file=options.description_file,
                             text_encoder=options.text_encoder, image_size=options.image_size,
                             progress=options.progress)
    start = time.perf_counter()  # after loading (a missing demo checkpoint is trained first)
    settings = frozenset(getattr(adapter, "settings", entry.settings))
    adapter.to(device)
    identity = adapter.describe()
    work = path.with_suffix("")
    import torch

    torch.manual_seed(options.seed)
    if options.data_root is None:
        from cxrbench.diagnose.synthetic import diagnose_synthetic
        from cxrbench.synth.counterfactual import make_counterfactual_set, write_case_listing

        cset = make_counterfactual_set(options.n, options.size, options.seed, options.site)
        classes = focal_class_specs(list(cset.params["classes"]))
        outcome = diagnose_synthetic(adapter, settings, cset, classes, n_boot=options.n_boot, seed=options.seed,
                                     progress=options.progress)
        cases_path, cases_sha = write_case_listing(cset, work / "cases.tsv")
        ids = [c.case_id for c in cset.cases]
        splits = {"cases": {"path": str(cases_path), "sha256": cases_sha, "n_images": 5 * len(ids),
                            "n_cases": len(ids)}}
        for name, members in outcome["probe_split"].items():
            text = "".join(f"{ids[int(i)]}\n" for i in members)
            splits[name] = {**_text_file(work / f"probe-{name}.txt", text), "n_images": 5 * len(members),
                            "n_cases": len(members)}
        data = {"root": "synthcxr-counterfactual (generated in memory)", "synthetic": True, "splits": splits,
                "skipped_files": [], "counterfactual": cset.params}
        dataset = "synthcxr-counterfactual"
    else:
        from cxrbench.diagnose.real import diagnose_real

        outcome = diagnose_real(adapter, settings, Path(options.data_root), source, work, n_boot=options.n_boot,
                                seed=options.seed, progress=options.progress)
        classes = outcome["classes"]
        data = outcome["data"]
        dataset = source
    from cxrbench.diagnose.probes import RECIPE

    record = {
        "schema": SCHEMA,
        "protocol": PROTOCOL,
        "model": identity,
        "task": {"name": "diagnose", "dataset": dataset, "setting": "diagnose",
                 "classes": [c.__dict__ for c in classes]},
        "seed": options.seed,
        "summary": outcome["summary"],
        "not_applicable": outcome["not_applicable"],
        "metrics": outcome["metrics"],
        "selection": {"chosen_on": "probe regularisation C on the validation cases; nothing else is chosen",
                      "probe_recipe": RECIPE},
        "data": data,
        "environment": environment(str(device)),
        "options": {"n": options.n, "size": options.size, "site": options.site, "n_boot": options.n_boot},
        "artifacts": [],
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "wall_time_s": time.perf_counter() - start,
    }
    return write_diagnose_record(path, record, overwrite=options.overwrite)


__all__ = ["DEFAULT_N", "DiagnoseOptions", "PROTOCOL", "SCHEMA", "record_path", "run_diagnose",
           "validate_diagnose_record", "write_diagnose_record"]
