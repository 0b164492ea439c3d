"""``cxrbench run``: evaluate one model on one task for given label fractions and seeds."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from rich.console import Console

from cxrbench.models.base import UnsupportedSetting
from cxrbench.models.registry import get_model
from cxrbench.phases import phase, recording
from cxrbench.results import PROTOCOL, environment, record_path, write_record
from cxrbench.tasks import ft, ground, seg, zs
from cxrbench.tasks.common import load_task_data, with_split_files
from cxrbench.tasks.finetune import FitSettings, default_workers
from cxrbench.tasks.specs import get_task

RUNNERS = {"zs": zs.run, "ground": ground.run, "ft": ft.run, "seg": seg.run}
#: Models whose loader falls back to a demo checkpoint (pre-trained on SynthCXR) when no --checkpoint is given.
DEMO_CHECKPOINT_MODELS = frozenset({"medslip", "clip", "clip-vit", "medslip-single-stream"})
#: Settings that train on a label-fraction subset.
TRAINED = {"ft", "seg"}
#: Settings that evaluate a fixed checkpoint: nothing is drawn, so they run once whatever seeds are asked
#: (protocol v2), and their record has ``seed: null``.
DETERMINISTIC = {"zs", "ground"}
#: Grounding map post-processing: the protocol's, or the published MeDSLIP/MedKLIP ones (fidelity options).
GROUNDING_POSTPROCESS = ground.POSTPROCESS


@dataclass
class RunOptions:
    data_root: Path | None = None
    checkpoint: Path | None = None
    description_file: Path | None = None
    text_encoder: str | None = None
    image_size: int | None = None
    device: str | None = None
    out: Path = Path("results")
    skip_existing: bool = False
    overwrite: bool = False
    n_boot: int = 1000
    threshold_on: str = "val"
    split_file: Path | None = None
    split_seed: int = 0
    grounding_postprocess: str = "protocol"
    skip_bad_images: bool = False
    linear_probe: bool = False
    epochs: int = 10
    batch_size: int = 16
    lr: float = 1e-4
    #: ft/seg DataLoader workers for the training batches; ``None``: none on CPU, up to 8 on an accelerator
    workers: int | None = None
    progress: bool = True
    zero_shot_rule: str | None = None  # zoo models: which published / deterministic rule (default: the catalog's first)
    #: with ``data_root`` and no ``checkpoint``: evaluate the synthetic demo checkpoint anyway (refused otherwise)
    use_demo_checkpoint: bool = False


def uses_demo_checkpoint(model_name: str, options: RunOptions) -> bool:
    """True when ``model_name`` would be evaluated with its demo checkpoint (trainable model, no checkpoint)."""
    return model_name in DEMO_CHECKPOINT_MODELS and options.checkpoint is None


def check_demo_checkpoint(model_name: str, options: RunOptions) -> None:
    """Refuse to evaluate a synthetic-data demo checkpoint on a real ``--data-root`` unless asked explicitly."""
    from cxrbench.errors import UserError

    if options.data_root is not None and uses_demo_checkpoint(model_name, options) and not options.use_demo_checkpoint:
        raise UserError(
            f"--data-root {options.data_root} without --checkpoint: {model_name} would be evaluated with its demo "
            "checkpoint, pre-trained on synthetic data; pass --checkpoint PATH (the weights to evaluate), or "
            "--use-demo-checkpoint to evaluate the demo weights on this data anyway")


def check_data_root_folder(spec, options: RunOptions) -> None:
    """``--data-root`` exists, is a folder and holds files (cheap; before anything else)."""
    from cxrbench.errors import UserError

    if options.data_root is None:
        return
    root = Path(options.data_root)
    if not root.exists():
        raise UserError(f"--data-root {root}: no such folder (the {spec.dataset} dataset folder was expected)")
    if not root.is_dir():
        raise UserError(f"--data-root {root}: not a folder")
    if not any(root.iterdir()):
        raise UserError(f"--data-root {root}: the folder is empty (the {spec.dataset} dataset folder was expected; "
                        f"see docs/datasets.md)")


def validate_data_root(spec, options: RunOptions):
    """Check ``--data-root`` before any model is loaded or trained: a non-empty folder whose label files the
    task's dataset adapter reads without an error-kind problem. Returns the loaded table (with the split seed and
    split file), which the run then uses, or None without ``--data-root``."""
    from cxrbench.data.registry import get_dataset

    if options.data_root is None:
        return None
    check_data_root_folder(spec, options)
    with phase("table"):  # one-line layout/problem error
        return get_dataset(spec.dataset).load(Path(options.data_root), seed=options.split_seed,
                                              split_file=options.split_file)


def _checkpoint_error(model_name: str, checkpoint: Path | None, err: Exception) -> Exception:
    """A one-line :class:`UserError` for a ``--checkpoint`` that cannot be loaded; other errors unchanged."""
    import pickle

    from cxrbench.errors import UserError, one_line

    if checkpoint is None or isinstance(err, UserError) or type(err).__name__ in (
            "TextEncoderUnavailable", "TextTowerUnavailable", "UnsupportedSetting", "WeightsUnavailable"):
        return err
    where = f"--checkpoint {checkpoint}"
    if isinstance(err, pickle.UnpicklingError):
        return UserError(f"{where}: refused: the file holds Python objects other than tensors (read with "
                         "weights_only=True; nothing in it was executed)")
    if hasattr(err, "missing") and hasattr(err, "unexpected"):  # medslip / baselines CheckpointMismatch
        parts = []
        for name, keys in (("missing", err.missing), ("unexpected", err.unexpected),
                           ("mis-shaped", [k[0] for k in getattr(err, "misshaped", [])])):
            if keys:
                parts.append(f"{len(keys)} {name} key(s) (e.g. {', '.join(list(keys)[:2])})")
        return UserError(f"{where}: does not match the {model_name} model: {'; '.join(parts)}")
    if isinstance(err, (FileNotFoundError, NotADirectoryError, IsADirectoryError)):
        return UserError(f"{where}: not a {model_name} checkpoint ({one_line(str(err))})")
    if isinstance(err, (ValueError, KeyError, RuntimeError, OSError)) and not isinstance(err, KeyboardInterrupt):
        message = err.args[0] if isinstance(err, KeyError) and err.args else str(err)
        return UserError(f"{where}: cannot be loaded as a {model_name} checkpoint: {one_line(str(message))}")
    return err


def _device(name: str | None) -> torch.device:
    if name is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        from cxrbench.errors import UserError

        raise UserError(f"--device {name}: CUDA is not available on this machine (use --device cpu)")
    return torch.device(name)


def weights_kind(identity: dict[str, Any], checkpoint_given: bool) -> str:
    """What the evaluated weights are: ``random``, ``released`` (published weights), ``trained`` (a checkpoint of
    ours the user passed) or ``demo`` (the synthetic demo checkpoint, trained implicitly when none is passed).

    An adapter may say it itself (``describe()["weights"]`` already one of :data:`WEIGHT_KINDS`)."""
    from cxrbench.results import WEIGHT_KINDS

    said = identity.get("weights")
    if said in WEIGHT_KINDS:
        return str(said)
    init = str(identity.get("initialisation") or "")
    if identity.get("random_weights") or init.startswith("random") or identity.get("pretrained") == "random":
        return "random"
    if identity.get("zoo") or identity.get("source") in ("published-pth", "open_clip") or said:
        return "released"  # published weights: a released .pth, an open_clip / ImageNet weight file, a zoo entry
    return "trained" if checkpoint_given else "demo"


def _identity(adapter, checkpoint_given: bool) -> dict[str, Any]:
    """``adapter.describe()`` with ``weights`` set to its kind; an adapter's own ``weights`` text (e.g. the name of
    an ImageNet weight set) moves to ``weights_name``."""
    from cxrbench.results import WEIGHT_KINDS

    identity = dict(adapter.describe())
    kind = weights_kind(identity, checkpoint_given)
    if identity.get("weights") not in (None, *WEIGHT_KINDS):
        identity["weights_name"] = identity["weights"]
    identity["weights"] = kind
    return identity


def run_seeds(setting: str, seeds: list[int]) -> list[int | None]:
    """The seeds a setting runs: ``[None]`` for deterministic settings (one record), else the given seeds."""
    return [None] if setting in DETERMINISTIC else list(dict.fromkeys(int(s) for s in seeds))


def run(model_name: str, task_name: str, label_fracs: list[float | None], seeds: list[int],
        options: RunOptions, adapter=None) -> list[Path]:
    """Run every (label fraction, seed) pair; returns the record paths (existing ones when skipped)."""
    console = Console(stderr=True)
    spec = get_task(task_name)
    entry = get_model(model_name)
    if spec.setting not in entry.settings:
        raise ValueError(f"model {model_name!r} does not support {spec.setting!r} tasks "
                         f"(supports: {', '.join(sorted(entry.settings))})")
    if spec.setting in TRAINED:
        fracs = [1.0 if f is None else f for f in label_fracs]
    else:
        if any(f not in (None, 1.0) for f in label_fracs):
            console.print(f"[yellow]{task_name} is zero-shot: --label-frac is ignored[/]")
        fracs = [None]
    from cxrbench.data.subsets import validate_fraction

    for f in fracs:
        if f is not None:
            validate_fraction(f)
    if options.threshold_on not in ("val", "test"):
        raise ValueError(f"threshold_on must be 'val' or 'test', got {options.threshold_on!r}")
    if options.grounding_postprocess not in GROUNDING_POSTPROCESS:
        raise ValueError(f"grounding postprocess must be one of {', '.join(GROUNDING_POSTPROCESS)}, "
                         f"got {options.grounding_postprocess!r}")
    if spec.setting in DETERMINISTIC and len(set(seeds)) > 1:
        console.print(f"[yellow]{task_name} evaluates a fixed checkpoint (deterministic): it runs once, "
                      f"not once per seed[/]")
    check_data_root_folder(spec, options)
    check_demo_checkpoint(model_name, options)
    todo = [(f, s) for f in fracs for s in run_seeds(spec.setting, seeds)]
    paths = []
    pending = []
    for f, s in todo:
        path = record_path(options.out, model_name, task_name, f, s)
        if path.exists() and options.skip_existing:
            console.print(f"skip (exists): {path}")
            paths.append(path)
        elif path.exists() and not options.overwrite:
            raise FileExistsError(f"{path} exists; use --skip-existing to keep it or --overwrite to replace it")
        else:
            pending.append((f, s, path))
    if not pending:
        return paths
    device = _device(options.device)
    with recording() as log:  # wall time and peak memory per phase, in each record
        return _run_pending(spec, model_name, entry, options, pending, paths, device, console, adapter, log)


def _run_pending(spec, model_name: str, entry, options: RunOptions, pending, paths: list[Path], device,
                 console, adapter, log) -> list[Path]:
    """The records of :func:`run` that are not on disk yet, with their phases in ``log``."""
    mark = len(log.entries)  # the first record also holds the phases before it (table, preflight, cache)
    table = validate_data_root(spec, options)  # before a model is loaded (or its demo checkpoint trained)
    if adapter is None:
        try:
            adapter = entry.load(checkpoint=options.checkpoint, description_file=options.description_file,
                                 text_encoder=options.text_encoder, image_size=options.image_size,
                                 progress=options.progress, zero_shot_rule=options.zero_shot_rule)
        except Exception as err:  # noqa: BLE001 - a checkpoint that does not load is named, in one line
            raise _checkpoint_error(model_name, options.checkpoint, err) from err
    supported = getattr(adapter, "settings", entry.settings)  # a model's settings may depend on its checkpoint
    if spec.setting not in supported:
        reason = getattr(adapter, "unsupported", {}).get(spec.setting, "")
        raise UnsupportedSetting(model_name, spec.setting, f"{reason} (this checkpoint supports: "
                                 f"{', '.join(sorted(supported))})".strip())
    adapter.to(device)
    identity = _identity(adapter, options.checkpoint is not None)
    loaded = None
    for f, s, path in pending:
        start = time.perf_counter()
        work = path.with_suffix("")  # the record's folder of split files, subset and artefacts
        if loaded is None:  # once for every (fraction, seed): nothing here depends on them
            # the split seed, never the run seed, draws the splits: every run seed sees the same test split
            loaded = load_task_data(spec, options.data_root, adapter.image_size, seed=options.split_seed,
                                    split_file=options.split_file, skip_bad_images=options.skip_bad_images,
                                    progress=options.progress, table=table)
        data = with_split_files(loaded, work)
        subset = None
        kwargs: dict[str, Any] = dict(out_dir=work, n_boot=options.n_boot, seed=0 if s is None else s,
                                      device=device, threshold_on=options.threshold_on, progress=options.progress,
                                      postprocess=options.grounding_postprocess)
        if spec.setting in TRAINED:
            from cxrbench.data.subsets import make_subset

            with phase("splits"):  # the label-fraction subset drawn with the run seed
                rows, sub = make_subset(data.table, spec.labels, f, s, work / "subset.txt")
            subset = {"fraction": f, "seed": s, "path": str(sub.path), "sha256": sub.sha256,
                      "n_images": sub.n_images, "n_patients": sub.n_patients, "positives": sub.positives}
            kwargs.update(label_frac=f, subset_rows=rows, linear_probe=options.linear_probe,
                          settings=FitSettings(epochs=options.epochs, batch_size=options.batch_size, lr=options.lr,
                                              workers=default_workers(device) if options.workers is None
                                              else options.workers))
        torch.manual_seed(0 if s is None else s)
        outcome = RUNNERS[spec.setting](adapter, data, **kwargs)
        training_mode = None
        if spec.setting == "ft":
            training_mode = "linear-probe" if options.linear_probe else "full fine-tuning"
        elif spec.setting == "seg":
            training_mode = "segmentation (U-Net decoder)"
        record = {
            "schema": "cxrbench.result/1",
            "protocol": PROTOCOL,
            "model": identity,
            "task": {"name": spec.name, "dataset": spec.dataset, "setting": spec.setting, "notes": spec.notes,
                     "classes": [c.__dict__ for c in spec.classes]},
            "label_fraction": f,
            "seed": s,
            "summary": outcome["summary"],
            "metrics": outcome["metrics"],
            "selection": outcome["selection"],
            "training": outcome.get("training"),
            "n_eval": outcome.get("n_eval"),
            "evaluation": {
                "deterministic": spec.setting in DETERMINISTIC,
                "threshold_on": outcome["selection"].get("threshold_on", options.threshold_on),
                "training_mode": training_mode,
                "grounding_postprocess": options.grounding_postprocess if spec.setting == "ground" else None,
                "split_seed": options.split_seed,
                "split_file": str(options.split_file) if options.split_file else None,
            },
            "data": {"root": str(data.root), "synthetic": data.synthetic,
                     "kind": "synthetic" if data.synthetic else "real", "split_seed": options.split_seed,
                     "splits": data.splits, "subset": subset, "skipped_files": data.skipped,
                     "warnings": data.table.attrs.get("warnings", {})},
            "environment": environment(str(device)),
            "artifacts": [str((work / a).relative_to(path.parent)) for a in outcome.get("artifacts", [])],
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "wall_time_s": time.perf_counter() - start,
            "timings": log.entries[mark:],  # the phases of this record (the first also pays for loading)
        }
        for stale in path.parent.glob(f".{path.name}.*.tmp"):  # left by a write that was killed (kill -9)
            stale.unlink(missing_ok=True)
        try:
            with phase("record"):
                write_record(path, record, overwrite=options.overwrite)
        except OSError as err:  # a full disk, a read-only folder: the record is not written (nor half-written)
            if isinstance(err, FileExistsError):
                raise
            from cxrbench.errors import UserError

            raise UserError(f"{path}: cannot write the record ({err.strerror or err}); "
                            "nothing was written") from err
        mark = len(log.entries)
        paths.append(path)
        console.print(f"wrote {path}")
    return paths
