"""Preprocessing cache: decode + resize every image once into a memory-mapped uint8 array.

Layout under ``cache_dir()/images/<dataset>/<size>/<key>/``: ``pixels.u8`` (``N x size x size`` uint8,
row ``i`` = ``paths[i]``) and ``index.json`` (paths, fingerprints, size; written last, so a directory
without it is an unfinished build and is ignored).  ``key`` hashes the ordered (path, fingerprint) list and
the size; a fingerprint is the file's byte size and modification time (ns), so a changed or replaced file
gives a new key.  Rebuilding reuses the rows of earlier caches of the same dataset and size whose
fingerprints still match, so only changed or new files are decoded again.

Decoding runs in a process pool with a rich progress bar; reads come from the memory map.

A build writes into a temporary folder ``.<key>.<pid>.tmp`` next to the finished ones and renames it when
done.  A build that fails (a file that does not decode, a full disk, Ctrl-C) removes its temporary folder;
one killed outright (``kill -9``) leaves it, and the next build removes every temporary folder whose process
is gone.  With ``skip_bad=True`` files that do not decode are left out of the cache (``ImageCache.skipped``
lists them with the reason) instead of stopping the build.
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

__all__ = ["CacheDecodeError", "ImageCache", "build_cache", "decode_resized", "file_fingerprint", "open_cache",
           "remove_stale_builds"]

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


def _decode_chunk(args: tuple[list[str], int]) -> tuple[np.ndarray, list[tuple[int, str]]]:
    """The decoded chunk (zeros where a file failed) and ``(position, reason)`` of each failure."""
    paths, size = args
    out = np.zeros((len(paths), size, size), np.uint8)
    failed: list[tuple[int, str]] = []
    for k, p in enumerate(paths):
        try:
            out[k] = decode_resized(p, size)
        except ImageReadError as exc:
            failed.append((k, str(exc)))
        except Exception as exc:  # noqa: BLE001 - any decoder failure is a bad file, named
            failed.append((k, f"{p}: cannot decode image ({type(exc).__name__}: {exc})"))
    return out, failed


class CacheDecodeError(ImageReadError):
    """A file that does not decode while building the cache; ``path`` names it."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(reason)
        self.path = path
        self.reason = reason


@dataclass
class ImageCache:
    """A finished cache: ``cache[i]`` is the uint8 ``(size, size)`` image of ``paths[i]``."""

    dataset: str
    size: int
    paths: list[str]
    directory: Path
    pixels: np.ndarray  # memmap, shape (N, size, size), uint8
    #: ``(path, reason)`` of the files left out because they did not decode (``skip_bad`` builds)
    skipped: list[tuple[str, str]] = field(default_factory=list)
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


def _open_dir(directory: Path, dataset: str, skipped: list[tuple[str, str]] | None = None) -> ImageCache:
    meta = json.loads((directory / "index.json").read_text())
    n, size = len(meta["paths"]), int(meta["size"])
    pixels = np.memmap(directory / "pixels.u8", dtype=np.uint8, mode="r", shape=(n, size, size)) if n else \
        np.zeros((0, size, size), np.uint8)
    return ImageCache(dataset, size, list(meta["paths"]), directory, pixels, list(skipped or []))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def remove_stale_builds(parent: Path) -> list[Path]:
    """Remove the temporary folders of builds whose process is gone (killed); returns what was removed."""
    removed: list[Path] = []
    if not parent.is_dir():
        return removed
    for tmp in parent.glob(".*.tmp"):
        try:
            pid = int(tmp.name.rsplit(".", 2)[-2])
        except (ValueError, IndexError):
            continue
        if pid == os.getpid() or not _pid_alive(pid):
            shutil.rmtree(tmp, ignore_errors=True)
            removed.append(tmp)
    return removed


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
    skip_bad: bool = False,
) -> ImageCache:
    """Return the cache of ``paths`` at ``size``, building (or completing) it first when needed.

    Missing files raise :class:`ImageReadError`, undecodable ones :class:`CacheDecodeError`, naming the
    file; with ``skip_bad`` undecodable files are left out and listed in ``ImageCache.skipped`` (the cache
    then holds the other paths, in order).  ``workers`` defaults to ``min(8, cpu_count)``; 1 decodes in
    this process.  A failed build leaves no temporary folder behind.
    """
    items = [str(p) for p in paths]
    fingerprints = [file_fingerprint(p) for p in items]
    parent = _cache_parent(dataset, size, cache_root)
    key = _key(items, fingerprints, size)
    directory = parent / key
    if (directory / "index.json").is_file():
        return _open_dir(directory, dataset)

    parent.mkdir(parents=True, exist_ok=True)
    remove_stale_builds(parent)
    tmp = parent / f".{key}.{os.getpid()}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        return _build_into(tmp, parent, items, fingerprints, size, dataset, key, workers, progress, skip_bad)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _build_into(tmp: Path, parent: Path, items: list[str], fingerprints: list[str], size: int, dataset: str,
                key: str, workers: int | None, progress: bool, skip_bad: bool) -> ImageCache:
    directory = parent / key
    n = len(items)
    skipped: list[tuple[str, str]] = []
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
        bad = _decode_into(pixels, items, todo, size, workers, progress, dataset, skip_bad)
        if bad:  # keep only the rows that decoded, under the key of those paths
            skipped = [(items[i], bad[i]) for i in sorted(bad)]
            keep = [i for i in range(n) if i not in bad]
            items = [items[i] for i in keep]
            fingerprints = [fingerprints[i] for i in keep]
            key = _key(items, fingerprints, size)
            directory = parent / key
            if keep:
                compact = np.memmap(tmp / "pixels.tmp", dtype=np.uint8, mode="w+", shape=(len(keep), size, size))
                for j, i in enumerate(keep):
                    compact[j] = pixels[i]
                compact.flush()
                del compact
            del pixels
            if keep:
                os.replace(tmp / "pixels.tmp", tmp / "pixels.u8")
            else:
                (tmp / "pixels.u8").unlink()
        else:
            pixels.flush()
            del pixels
    if (directory / "index.json").is_file():  # the decodable subset is already cached
        return _open_dir(directory, dataset, skipped)
    meta = {"dataset": dataset, "size": size, "paths": items, "fingerprints": fingerprints}
    (tmp / "index.json").write_text(json.dumps(meta))
    try:
        os.replace(tmp, directory)
    except OSError:  # another process finished the same cache first
        shutil.rmtree(tmp, ignore_errors=True)
    return _open_dir(directory, dataset, skipped)


def _decode_into(
    pixels: np.ndarray, items: list[str], todo: list[int], size: int, workers: int | None, progress: bool,
    dataset: str,
    skip_bad: bool = False,
) -> dict[int, str]:
    """Decode rows ``todo`` into ``pixels``; returns ``{row: reason}`` of the files that failed (``skip_bad``),
    else raises :class:`CacheDecodeError` at the first."""
    bad: dict[int, str] = {}
    if not todo:
        return bad

    def take(chunk: list[int], block: np.ndarray, failed: list[tuple[int, str]]) -> None:
        pixels[chunk] = block
        for k, reason in failed:
            if not skip_bad:
                raise CacheDecodeError(items[chunk[k]], reason)
            bad[chunk[k]] = reason
    workers = workers or min(8, os.cpu_count() or 1)
    chunks = [todo[i : i + _CHUNK] for i in range(0, len(todo), _CHUNK)]
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, disable=not progress, transient=False) as bar:
        task = bar.add_task(f"caching {dataset} at {size}px", total=len(todo))
        if workers <= 1 or len(chunks) == 1:
            for chunk in chunks:
                take(chunk, *_decode_chunk(([items[i] for i in chunk], size)))
                bar.advance(task, len(chunk))
            return bad
        pool = ProcessPoolExecutor(max_workers=workers)
        try:
            jobs = (([items[i] for i in chunk], size) for chunk in chunks)
            for chunk, (block, failed) in zip(chunks, pool.map(_decode_chunk, jobs), strict=True):
                take(chunk, block, failed)
                bar.advance(task, len(chunk))
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
    return bad
