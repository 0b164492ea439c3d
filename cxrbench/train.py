"""``cxrbench train``: pre-train a registered method from a shipped or user config.

The demo config trains on the embedded SynthCXR pre-training corpus; its final checkpoint is the
*demo checkpoint* that ``cxrbench run`` uses when no ``--checkpoint`` is given.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import warnings
from dataclasses import fields
from datetime import timedelta
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from cxrbench.config import apply_overrides, load_config
from cxrbench.paths import cache_dir


def demo_run_dir(method: str) -> Path:
    """Where the demo run of ``method`` lives (its final checkpoint is ``<dir>/final``)."""
    return cache_dir() / "runs" / f"{method}-demo"


def demo_checkpoint(method: str) -> Path:
    return demo_run_dir(method) / "final"


def demo_or_train(method: str, marker: str, config: str = "demo", run_name: str | None = None,
                  progress: bool = True) -> Path:
    """The demo checkpoint of ``method`` (trained with ``config``, kept as the demo run ``run_name``),
    training it first, with a message, when it is absent. ``marker`` is the file that a finished
    checkpoint folder of that method holds. Every adapter that falls back to a demo checkpoint uses this."""
    from rich.console import Console

    name = run_name or method
    checkpoint = demo_checkpoint(name)
    if not (checkpoint / marker).exists():
        command = f"cxrbench train {method}" + ("" if config == "demo" else f" --config {config}")
        Console(stderr=True).print(
            f"[yellow]No {name} checkpoint given and no demo checkpoint yet: training the {config} config first "
            f"(`{command}`, a few minutes on CPU)...[/]")
        checkpoint = train_method(method, config, out=None if config == "demo" else demo_run_dir(name),
                                  progress=progress)
    return checkpoint


# ------------------------------------------------------------------------- under torchrun
# Preparing a run (text encoder, books, corpus, image cache) can take long on real data; the ranks that wait
# for rank 0 do so on a CPU (gloo) group with a long timeout instead of the default group's 30 minutes.
_PREPARE_TIMEOUT = timedelta(hours=12)


def is_rank_zero() -> bool:
    """True outside torchrun and on rank 0 under it (the rank that logs, prints and writes files)."""
    import torch.distributed as dist

    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


def _wait_group():
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return None
    return dist.new_group(backend="gloo", timeout=_PREPARE_TIMEOUT)


@contextlib.contextmanager
def rank_zero_first() -> Iterator[None]:
    """Run the block on rank 0 first, then on the other ranks together, which find what rank 0 wrote to the
    caches (synthetic corpus, image cache, book embeddings, downloaded weights) instead of writing it again
    concurrently. Outside torchrun the block just runs."""
    import torch.distributed as dist

    group = _wait_group()
    if group is None:
        yield
        return
    if dist.get_rank() != 0:
        dist.barrier(group=group)
    yield  # an exception on rank 0 ends here; torchrun then stops the waiting ranks
    if dist.get_rank() == 0:
        dist.barrier(group=group)
    dist.destroy_process_group(group)


def wait_for_all_ranks() -> None:
    """Under torchrun: return only when every rank got here (e.g. rank 0 has written the final checkpoint)."""
    import torch.distributed as dist

    group = _wait_group()
    if group is not None:
        dist.barrier(group=group)
        dist.destroy_process_group(group)


def end_distributed() -> None:
    """Under torchrun: tear the process group down at the end of a CLI command (the ranks already met in
    :func:`train_method`'s :func:`wait_for_all_ranks`)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def load_text_encoder_for(config: dict[str, Any]):
    """(encoder, name to load it again): the configured text encoder, falling back to the tiny random one (with a warning) for ``minilm``."""
    from medslip.text import MINILM, TINY_RANDOM, TextEncoderUnavailable, load_text_encoder

    from cxrbench.downloads import downloads_allowed

    name = config.get("text_encoder", MINILM)
    max_length = int(config.get("text_max_length", 128))
    try:
        return load_text_encoder(name, max_length=max_length, allow_download=downloads_allowed()), name
    except TextEncoderUnavailable as exc:
        if name != MINILM:
            raise
        warnings.warn(f"{exc}; using a small random text encoder instead (books carry no language)", stacklevel=2)
        return load_text_encoder(TINY_RANDOM, max_length=max_length), TINY_RANDOM


def pretrain_table(config: dict[str, Any], data_root: str | Path | None, progress: bool = True):
    """(train table, adjacency matrix, corpus root) of the configured pre-training corpus."""
    from cxrbench.data.registry import get_dataset

    data = config["data"]
    source = data.get("source", "synth")
    root = data_root or data.get("root")
    if source == "synth" and root is None:
        from cxrbench.synth import default_root

        root = default_root("medslip-pretrain", progress=progress)
        source = "medslip-pretrain"
    elif source == "synth":
        source = "medslip-pretrain"
    if source in ("mimic-cxr", "mimic"):
        raise ValueError("MIMIC-CXR is read through the pre-training files that `cxrbench prep mimic --root "
                         "MIMIC_ROOT --out DIR` writes: run it once, then train with --data-root DIR "
                         "(data.source: medslip-pretrain)")
    if root is None:
        raise ValueError(f"data source {source!r} needs a folder: pass --data-root DIR (or set data.root)")
    if source != "medslip-pretrain":
        raise ValueError(f"unknown pre-training source {source!r}: use medslip-pretrain (files from "
                         "`cxrbench prep mimic` or the published ones) or synth")
    adapter = get_dataset("medslip-pretrain")
    prefix = data.get("path_prefix")
    if prefix:
        adapter = adapter.with_prefix(*prefix)
    table = adapter.load(root, split="train")
    matrix = np.load(Path(root) / "landmark_observation_adj_mtx.npy", mmap_mode="r")
    return table, matrix, Path(root)


def data_fingerprint(paths: list[str], targets) -> str:
    """sha256 over (image path, target) pairs: identifies a pre-training corpus in checkpoints and runs."""
    digest = hashlib.sha256()
    for path, row in zip(paths, targets):
        digest.update(f"{path}\t{row}\n".encode())
    return digest.hexdigest()


def run_summary(result, seconds: float) -> dict[str, Any]:
    """What a final checkpoint records about its training run (steps, time, first and last losses)."""
    losses = [h["loss"] for h in result.history]
    return {"global_step": result.global_step, "seconds": seconds, "first_losses": losses[:5],
            "last_losses": losses[-5:]}


def print_loss_trend(console, summary: dict[str, Any], final: Path) -> None:
    """One line: mean loss over the first and the last logged steps of this call, and the checkpoint."""
    first, last = summary["first_losses"], summary["last_losses"]
    if first:
        console.print(f"loss {np.mean(first):.3f} (first steps) -> {np.mean(last):.3f} (last steps); "
                      f"checkpoint: {final}")


def train_method(
    method: str,
    config_name: str = "demo",
    overrides: list[str] | None = None,
    data_root: str | Path | None = None,
    out: str | Path | None = None,
    resume: bool = False,
    device: str | None = None,
    progress: bool = True,
) -> Path:
    """Train ``method`` and return the final checkpoint folder."""
    from cxrbench.methods import get_method

    spec = get_method(method)
    run_dir = Path(out) if out else (demo_run_dir(method) if config_name == "demo" and data_root is None
                                     else Path("runs") / f"{method}-{Path(config_name).stem}")
    saved = run_dir / "config.json"
    if resume and saved.exists():
        # a resumed run continues with the configuration it was started with (plus any new overrides)
        stored = json.loads(saved.read_text(encoding="utf-8"))
        config = apply_overrides(stored["config"], overrides or [])
        data_root = data_root or stored.get("data_root")
    else:
        config = apply_overrides(load_config(method, config_name), overrides or [])
    final = spec.train(config, run_dir, data_root=data_root, resume=resume, device=device, progress=progress)
    wait_for_all_ranks()  # under torchrun rank 0 saves the final checkpoint: every rank returns once it exists
    return final


def train_config(config: dict[str, Any]):
    """The ``train`` section as a :class:`medslip.trainer.TrainConfig` (unknown keys are an error)."""
    from medslip.trainer import TrainConfig

    known = {f.name for f in fields(TrainConfig)}
    section = dict(config.get("train", {}))
    unknown = sorted(set(section) - known)
    if unknown:
        raise KeyError(f"unknown train settings {unknown}; known: {sorted(known)}")
    kinds = {f.name: str(f.type).replace(" ", "") for f in fields(TrainConfig)}
    for key, value in section.items():
        kind = kinds[key]  # "int", "float", "bool", "int|None", "float|None", ...
        base, optional = kind.split("|")[0], kind.endswith("|None")
        if value is None:
            if not optional and base in ("int", "float", "bool"):
                raise ValueError(f"train.{key} must be set (got null)")
        elif base == "bool":
            if not isinstance(value, bool):
                raise ValueError(f"train.{key} must be true or false, got {value!r}")
        elif base in ("int", "float"):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"train.{key} must be a number, got {value!r}")
            if base == "int":
                if float(value) != int(value):
                    raise ValueError(f"train.{key} must be a whole number, got {value!r}")
                section[key] = int(value)
            else:
                section[key] = float(value)
    return TrainConfig(**section)


def write_run_config(run_dir: Path, config: dict[str, Any], extra: dict[str, Any]) -> None:
    from medslip.atomic import write_text_atomic

    write_text_atomic(run_dir / "config.json", json.dumps({"config": config, **extra}, indent=2, default=str) + "\n")


__all__ = ["demo_checkpoint", "demo_run_dir", "end_distributed", "is_rank_zero", "pretrain_table", "rank_zero_first",
           "train_method", "wait_for_all_ranks"]
