"""Preprocessing cache: decode + resize every image once into a memory-mapped uint8 array.

Layout under ``cache_dir()/images/<dataset>/<size>/<key>/``: ``pixels.u8`` (``N x size x size`` uint8,
row ``i`` = ``paths[i]``) and ``index.json`` (paths, fingerprints, size; written last, so a directory
without it is an unfinished build and is ignored).  ``key`` hashes the ordered (path, fingerprint) list and
the size; a fingerprint is the file's byte size and modification time (ns), so a changed or replaced file
gives a new key.  Rebuilding reuses the rows of earlier caches of the same dataset and size whose
fingerprints still match, so only changed or new files are decoded again.

Decoding runs in a process pool with a rich progress bar; reads come from the memory map.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cxrbench.data.images import ImageReadError, read_image, resize_image

__all__ = ["ImageCache", "build_cache", "decode_resized", "file_fingerprint", "open_cache"]

_CHUNK = 16


def file_fingerprint(path: str | Path) -> str:
    """``"<bytes>:<mtime_ns>"`` of a file; raises :class:`ImageReadError` naming a missing file."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise ImageReadError(f"{path}: file not found") from None
    return f"{st.st_size}:{st.st_mtime_ns}"


def decode_resized(path: str | Path, size: int) -> np.ndarray:
    """Decode one image and resize it to ``(size, size)`` uint8 (the cached representation)."""
    image = resize_image(read_image(path), size)
    return np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8)


def _decode_chunk(args: tuple[list[str], int]) -> np.ndarray:
    paths, size = args
    return np.stack([decode_resized(p, size) for p in paths])


@dataclass
class ImageCache:
    """A finished cache: ``cache[i]`` is the uint8 ``(size, size)`` image of ``paths[i]``."""

    dataset: str
    size: int
    paths: list[str]
    directory: Path
    pixels: np.ndarray  # memmap, shape (N, size, size), uint8
    _rows: dict[str, int] | None = field(default=None, init=False, repr=False)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> np.ndarray:
        return self.pixels[i]

    def image(self, i: int) -> np.ndarray:
        """Image ``i`` as float32 in [0, 1] (what :func:`read_image` + resize would give, to 1/255)."""
        return self.pixels[i].astype(np.float32) / 255.0

    def index_of(self, path: str | Path) -> int:
        """Row of ``path`` in the cache."""
        if self._rows is None:
            self._rows = {p: i for i, p in enumerate(self.paths)}
        return self._rows[str(path)]


def _cache_parent(dataset: str, size: int, cache_root: Path | None) -> Path:
    from cxrbench.paths import cache_dir

    root = cache_root if cache_root is not None else cache_dir()
    return Path(root) / "images" / dataset / str(size)


def _key(paths: Sequence[str], fingerprints: Sequence[str], size: int) -> str:
    digest = hashlib.sha256(f"size={size}\n".encode())
    for p, f in zip(paths, fingerprints, strict=True):
        digest.update(f"{p}\t{f}\n".encode())
    return digest.hexdigest()[:20]


def _open_dir(directory: Path, dataset: str) -> ImageCache:
    meta = json.loads((directory / "index.json").read_text())
    n, size = len(meta["paths"]), int(meta["size"])
    pixels = np.memmap(directory / "pixels.u8", dtype=np.uint8, mode="r", shape=(n, size, size)) if n else \
        np.zeros((0, size, size), np.uint8)
    return ImageCache(dataset, size, list(meta["paths"]), directory, pixels)


def open_cache(paths: Sequence[str | Path], size: int, dataset: str, cache_root: Path | None = None) -> ImageCache | None:
    """The finished cache for exactly these files (unchanged) and size, or ``None``."""
    items = [str(p) for p in paths]
    key = _key(items, [file_fingerprint(p) for p in items], size)
    directory = _cache_parent(dataset, size, cache_root) / key
    return _open_dir(directory, dataset) if (directory / "index.json").is_file() else None


def _reusable_rows(parent: Path, skip: str) -> dict[tuple[str, str], tuple[Path, int, int]]:
    """(path, fingerprint) -> (pixels file, row, n) over earlier finished caches in ``parent``."""
    rows: dict[tuple[str, str], tuple[Path, int, int]] = {}
    if not parent.is_dir():
        return rows
    for directory in sorted(parent.iterdir()):
        meta_path = directory / "index.json"
        if directory.name == skip or not meta_path.is_file():
            continue
        meta = json.loads(meta_path.read_text())
        n = len(meta["paths"])
        for i, (p, f) in enumerate(zip(meta["paths"], meta["fingerprints"], strict=True)):
            rows.setdefault((p, f), (directory / "pixels.u8", i, n))
    return rows


def build_cache(
    paths: Sequence[str | Path],
    size: int,
    dataset: str,
    *,
    cache_root: Path | None = None,
    workers: int | None = None,
    progress: bool = True,
) -> ImageCache:
    """Return the cache of ``paths`` at ``size``, building (or completing) it first when needed.

    Missing or undecodable files raise :class:`ImageReadError` naming the file (run the preflight first
    to skip them).  ``workers`` defaults to ``min(8, cpu_count)``; 1 decodes in this process.
    """
    items = [str(p) for p in paths]
    fingerprints = [file_fingerprint(p) for p in items]
    parent = _cache_parent(dataset, size, cache_root)
    key = _key(items, fingerprints, size)
    directory = parent / key
    if (directory / "index.json").is_file():
        return _open_dir(directory, dataset)

    parent.mkdir(parents=True, exist_ok=True)
    tmp = parent / f".{key}.{os.getpid()}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    n = len(items)
    if n:
        pixels = np.memmap(tmp / "pixels.u8", dtype=np.uint8, mode="w+", shape=(n, size, size))
        # Reuse rows of earlier caches whose files have not changed.
        reusable = _reusable_rows(parent, key)
        todo: list[int] = []
        opened: dict[Path, np.ndarray] = {}
        for i, pf in enumerate(zip(items, fingerprints, strict=True)):
            hit = reusable.get(pf)
            if hit is None:
                todo.append(i)
                continue
            src, row, m = hit
            if src not in opened:
                opened[src] = np.memmap(src, dtype=np.uint8, mode="r", shape=(m, size, size))
            pixels[i] = opened[src][row]
        opened.clear()
        _decode_into(pixels, items, todo, size, workers, progress, dataset)
        pixels.flush()
        del pixels
    meta = {"dataset": dataset, "size": size, "paths": items, "fingerprints": fingerprints}
    (tmp / "index.json").write_text(json.dumps(meta))
    try:
        os.replace(tmp, directory)
    except OSError:  # another process finished the same cache first
        shutil.rmtree(tmp, ignore_errors=True)
    return _open_dir(directory, dataset)


def _decode_into(
    pixels: np.ndarray, items: list[str], todo: list[int], size: int, workers: int | None, progress: bool,
    dataset: str,
) -> None:
    if not todo:
        return
    workers = workers or min(8, os.cpu_count() or 1)
    chunks = [todo[i : i + _CHUNK] for i in range(0, len(todo), _CHUNK)]
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, disable=not progress, transient=False) as bar:
        task = bar.add_task(f"caching {dataset} at {size}px", total=len(todo))
        if workers <= 1 or len(chunks) == 1:
            for chunk in chunks:
                pixels[chunk] = _decode_chunk(([items[i] for i in chunk], size))
                bar.advance(task, len(chunk))
            return
        with ProcessPoolExecutor(max_workers=workers) as pool:
            jobs = (([items[i] for i in chunk], size) for chunk in chunks)
            for chunk, block in zip(chunks, pool.map(_decode_chunk, jobs), strict=True):
                pixels[chunk] = block
                bar.advance(task, len(chunk))
