"""Preflight: check every image before a long run, so a bad file stops the run early with its path.

``preflight(paths)`` raises :class:`PreflightError` at the first missing or unreadable file (in input
order); with ``skip_bad=True`` it returns every bad file in ``PreflightResult.skipped`` instead, for the
result record, and the usable paths in ``ok``.

Reading a header does not find a truncated file, so the images are also *decoded*: with ``decode=True``
here (``cxrbench data check --decode``), or, for a run, while the preflight builds the image cache
(``cache_size`` and ``dataset`` given): the headers first (fast; finds missing files), then one decode of
every file not cached yet, which fills the cache.  A file that does not decode is then skipped (listed) or
stops the run with its path, like a missing one.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from cxrbench.data.images import ImageReadError, read_header, read_image

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
    workers = workers or min(16, (os.cpu_count() or 1) * 2)
    reasons: list[str | None] = [None] * len(items)
    with ThreadPoolExecutor(max_workers=workers) as pool:
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
            cache = build_cache(result.ok, cache_size, dataset, cache_root=cache_root, progress=progress,
                                skip_bad=skip_bad)
        except CacheDecodeError as exc:
            raise PreflightError(exc.path, exc.reason) from None
        if cache.skipped:
            bad = dict(cache.skipped)
            order = {p: i for i, p in enumerate(items)}
            result.ok = [p for p in result.ok if p not in bad]
            result.skipped = sorted(result.skipped + list(cache.skipped), key=lambda pr: order[pr[0]])
    return result
