"""SynthCXR corpora: generate a dataset folder in its real on-disk format, and the cached embedded default."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cxrbench.paths import cache_dir

from .writers import covidx, medslip, mimic, nih, rsna, siim

__all__ = ["DATASETS", "GENERATOR_VERSION", "MANIFEST_FILE", "DatasetInfo", "generate", "default_root"]

#: Bump when the rendered images, reports or file layouts change: cached corpora are keyed by it.
GENERATOR_VERSION = "2"
MANIFEST_FILE = "synthcxr_manifest.json"


@dataclass(frozen=True)
class DatasetInfo:
    """A synthetic dataset: its writer, default number of items (images or studies) and image size (px)."""

    name: str
    write: Callable[..., dict]
    default_n: int
    default_size: int
    unit: str


DATASETS: dict[str, DatasetInfo] = {d.name: d for d in (
    DatasetInfo("nih-cxr14", nih.write, 1200, 256, "images"),
    DatasetInfo("rsna-pneumonia", rsna.write, 600, 256, "patients"),
    DatasetInfo("siim-acr", siim.write, 600, 256, "images"),
    DatasetInfo("covidx-cxr4", covidx.write, 600, 224, "images"),
    DatasetInfo("mimic-cxr", mimic.write, 600, 256, "studies"),
    DatasetInfo("medslip-pretrain", medslip.write, 800, 224, "studies"),
)}


def _info(dataset: str) -> DatasetInfo:
    try:
        return DATASETS[dataset]
    except KeyError:
        raise KeyError(f"unknown synthetic dataset {dataset!r}; known: {', '.join(DATASETS)}") from None


def generate(dataset: str, out_dir: str | Path, n: int | None = None, size: int | None = None, seed: int = 0,
             progress: bool = True) -> Path:
    """Write the synthetic ``dataset`` into ``out_dir`` (created; must be empty or absent) and return it.

    ``n`` items (images, patients or studies, see ``DATASETS``) of ``size`` px; the same arguments give the same
    bytes.  A ``synthcxr_manifest.json`` records the parameters and class counts.
    """
    info = _info(dataset)
    n = info.default_n if n is None else int(n)
    size = info.default_size if size is None else int(size)
    if n < 1 or size < 64:
        raise ValueError(f"need n >= 1 and size >= 64 (got n={n}, size={size})")
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} is not empty; SynthCXR writes only into a new or empty folder")
    out.mkdir(parents=True, exist_ok=True)
    sub_seed = zlib.crc32(f"{dataset}:{seed}".encode())
    start = time.perf_counter()
    if progress:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        with Progress(TextColumn(f"SynthCXR {dataset}"), BarColumn(), MofNCompleteColumn(),
                      TimeRemainingColumn(), transient=False) as bar:
            task = bar.add_task(dataset, total=n)
            summary = info.write(out, n, size, sub_seed, lambda k: bar.advance(task, k))
    else:
        summary = info.write(out, n, size, sub_seed, lambda k: None)
    summary = {k: v for k, v in summary.items() if not k.startswith("_")}
    manifest = {"generator": "SynthCXR", "version": GENERATOR_VERSION, "dataset": dataset, "n": n, "size": size,
                "seed": seed, "summary": summary}
    (out / MANIFEST_FILE).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    if progress:
        print(f"SynthCXR: wrote {dataset} ({n} {info.unit}, {size} px) to {out} in "
              f"{time.perf_counter() - start:.1f} s")
    return out


def default_root(dataset: str, n: int | None = None, size: int | None = None, seed: int = 0,
                 progress: bool = True) -> Path:
    """The embedded default corpus of ``dataset``: generated once into the user cache, reused afterwards.

    Lives at ``cache_dir()/synth/<dataset>-<version>-<params hash>/``; written into a temporary sibling folder
    and renamed, so an interrupted run never leaves a half-written corpus behind.
    """
    info = _info(dataset)
    params = {"n": info.default_n if n is None else int(n), "size": info.default_size if size is None else int(size),
              "seed": int(seed)}
    key = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:10]
    base = cache_dir() / "synth"
    final = base / f"{dataset}-v{GENERATOR_VERSION}-{key}"
    if (final / MANIFEST_FILE).is_file():
        return final
    base.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dataset}-", dir=base))
    try:
        generate(dataset, tmp, progress=progress, **params)
        try:
            os.replace(tmp, final)
        except OSError:  # another process won the race: keep its copy
            if not (final / MANIFEST_FILE).is_file():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final
