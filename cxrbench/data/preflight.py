"""Preflight: check every image before a long run, so a bad file stops the run early with its path.

``preflight(paths)`` raises :class:`PreflightError` at the first missing or unreadable file (in input
order); with ``skip_bad=True`` it returns every bad file in ``PreflightResult.skipped`` instead, for the
result record, and the usable paths in ``ok``.

Reading a header does not find a truncated file, so the images are also *decoded*: with ``decode=True``
here (``cxrbench data check --decode``), or, for a run, while the preflight builds the image cache
(``cache_size`` and ``dataset`` given): the headers first (fast; finds missing files), then one decode of
every file not cached yet, which fills the cache.  A file that does not decode is then skipped (listed) or
stops the run with its path, like a missing one.

A run's preflight is remembered: its outcome (the usable files and the skipped ones with their reasons) is
written under ``<cache>/preflight/<dataset>/`` keyed by the ordered paths, each file's size and modification
time, and the cache size. A second run over unchanged files (another seed, fraction or sweep job) stats the files
and reads neither a header nor a pixel; a file that changed, appeared or went gives another key, and the check
runs again.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from cxrbench.data.images import ImageReadError, read_header, read_image
from cxrbench.phases import phase

__all__ = ["PreflightError", "PreflightResult", "preflight"]


class PreflightError(RuntimeError):
    """A missing or corrupt image found by the preflight; ``path`` names it."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"preflight: {reason} (pass skip_bad / --skip-bad-images to skip such files)")
        self.path = path
        self.reason = reason


@dataclass
class PreflightResult:
    """Usable paths and the skipped ``(path, reason)`` pairs, both in input order."""

    ok: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def to_record(self) -> list[dict[str, str]]:
        """The skipped files as a JSON-ready list for a result record."""
        return [{"path": p, "reason": r} for p, r in self.skipped]


def _probe(path: str) -> str | None:
    try:
        read_header(path)
    except ImageReadError as exc:
        return str(exc)
    except Exception as exc:  # noqa: BLE001 - anything else is also an unusable file
        return f"{path}: {exc}"
    return None


def _probe_decode(path: str) -> str | None:
    try:
        read_image(path)
    except ImageReadError as exc:
        return str(exc)
    except Exception as exc:  # noqa: BLE001 - anything else is also an unusable file
        return f"{path}: {exc}"
    return None


def preflight(
    paths: Sequence[str | Path],
    *,
    skip_bad: bool = False,
    workers: int | None = None,
    progress: bool = True,
    decode: bool = False,
    cache_size: int | None = None,
    dataset: str | None = None,
    cache_root: Path | None = None,
) -> PreflightResult:
    """Check every file in ``paths``; raise on the first bad one unless ``skip_bad``.

    By default the headers are read (threads); ``decode`` decodes every image instead; ``cache_size`` with
    ``dataset`` decodes them into the image cache of that size (:func:`cxrbench.data.cache.build_cache`,
    which the run then opens without decoding again).
    """
    items = [str(p) for p in paths]
    memo = _memo_path(items, cache_size, dataset, cache_root) if cache_size is not None and dataset else None
    remembered = _recall(memo, items, skip_bad)
    if remembered is not None:
        from cxrbench.data.cache import build_cache

        with phase("cache"):
            build_cache(remembered.ok, cache_size, dataset, cache_root=cache_root, progress=progress)  # opens it
        return remembered
    workers = workers or min(16, (os.cpu_count() or 1) * 2)
    reasons: list[str | None] = [None] * len(items)
    with phase("preflight"), ThreadPoolExecutor(max_workers=workers) as pool:
        iterator = pool.map(_probe_decode if decode else _probe, items, chunksize=64)
        if progress and items:
            from rich.progress import track

            what = "decoding images" if decode else "reading image headers"
            iterator = track(iterator, total=len(items), description=f"preflight: {what}")
        for i, reason in enumerate(iterator):
            reasons[i] = reason
    result = PreflightResult()
    for path, reason in zip(items, reasons, strict=True):
        if reason is None:
            result.ok.append(path)
        elif not skip_bad:
            raise PreflightError(str(Path(path)), reason)
        else:
            result.skipped.append((path, reason))
    if cache_size is not None and dataset is not None and result.ok:
        from cxrbench.data.cache import CacheDecodeError, build_cache

        try:
            with phase("cache"):
                cache = build_cache(result.ok, cache_size, dataset, cache_root=cache_root, progress=progress,
                                    skip_bad=skip_bad)
        except CacheDecodeError as exc:
            raise PreflightError(exc.path, exc.reason) from None
        if cache.skipped:
            bad = dict(cache.skipped)
            order = {p: i for i, p in enumerate(items)}
            result.ok = [p for p in result.ok if p not in bad]
            result.skipped = sorted(result.skipped + list(cache.skipped), key=lambda pr: order[pr[0]])
    if memo is not None:
        from medslip.atomic import write_text_atomic

        memo.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(memo, json.dumps({"n": len(items), "skipped": result.skipped}) + "\n")
    return result


def _memo_path(items: list[str], size: int, dataset: str, cache_root: Path | None) -> Path:
    from cxrbench.paths import cache_dir

    digest = hashlib.sha256(f"preflight size={size} dataset={dataset}\n".encode())
    for path in items:
        try:
            st = os.stat(path)
            fingerprint = f"{st.st_size}:{st.st_mtime_ns}"
        except OSError:
            fingerprint = "missing"  # the check itself names it (or skips it)
        digest.update(f"{path}\t{fingerprint}\n".encode())
    root = cache_root if cache_root is not None else cache_dir()
    return Path(root) / "preflight" / dataset / f"{digest.hexdigest()[:24]}.json"


def _recall(memo: Path | None, items: list[str], skip_bad: bool) -> PreflightResult | None:
    """The remembered outcome for exactly these unchanged files, or ``None``; raises like the check itself for a
    remembered bad file when ``skip_bad`` is off."""
    if memo is None or not memo.is_file():
        return None
    try:
        saved = json.loads(memo.read_text())
        skipped = [(str(p), str(r)) for p, r in saved["skipped"]]
        if int(saved["n"]) != len(items):
            return None
    except (OSError, ValueError, KeyError, TypeError):
        return None  # an unreadable memo is not trusted: check again
    if skipped and not skip_bad:
        raise PreflightError(str(Path(skipped[0][0])), skipped[0][1])
    bad = {p for p, _ in skipped}
    return PreflightResult(ok=[p for p in items if p not in bad], skipped=skipped)
