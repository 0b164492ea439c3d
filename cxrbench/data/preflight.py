"""Preflight: read every image header before a long run, so a bad file stops the run early with its path.

``preflight(paths)`` raises :class:`PreflightError` at the first missing or unreadable file (in input
order); with ``skip_bad=True`` it returns every bad file in ``PreflightResult.skipped`` instead, for the
result record, and the usable paths in ``ok``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from cxrbench.data.images import ImageReadError, read_header

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


def preflight(
    paths: Sequence[str | Path],
    *,
    skip_bad: bool = False,
    workers: int | None = None,
    progress: bool = True,
) -> PreflightResult:
    """Read the header of every file in ``paths`` (threads); raise on the first bad one unless ``skip_bad``."""
    items = [str(p) for p in paths]
    workers = workers or min(16, (os.cpu_count() or 1) * 2)
    reasons: list[str | None] = [None] * len(items)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        iterator = pool.map(_probe, items, chunksize=64)
        if progress and items:
            from rich.progress import track

            iterator = track(iterator, total=len(items), description="preflight: reading image headers")
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
    return result
