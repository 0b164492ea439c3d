"""Wall time and peak resident memory per phase of a run (table, splits, preflight, cache, inference, training,
metrics, record), written into the result record as ``timings``.

``with recording() as log:`` collects the phases entered below it in this thread; ``with phase(name):`` marks
one and does nothing when no recording is active, so library code can mark its phases unconditionally.
Phases do not nest: a phase entered inside another is folded into the outer one.

Peak RSS per phase: on Linux the kernel's high-water mark is reset at the start of each phase (writing ``5`` to
``/proc/self/clear_refs``) and read from ``VmHWM`` at its end, so each entry says the most memory that phase
held; where that is not possible the entry carries the process's peak so far (``peak_rss_scope: process``).
The reset also resets ``getrusage``'s ``ru_maxrss``: after a recording, a whole-process peak is the largest entry
or, outside the phases, a sampled one (as the scale benchmark does).
"""

from __future__ import annotations

import resource
import sys
import time
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Iterator

__all__ = ["PhaseLog", "phase", "recording"]

_active: ContextVar["PhaseLog | None"] = ContextVar("cxrbench_phases", default=None)


@dataclass
class PhaseLog:
    entries: list[dict[str, Any]] = field(default_factory=list)
    _inside: bool = False

    def totals(self) -> dict[str, dict[str, float]]:
        """Per phase name: summed wall time and the largest peak RSS over its entries."""
        out: dict[str, dict[str, float]] = {}
        for e in self.entries:
            t = out.setdefault(e["phase"], {"wall_s": 0.0, "peak_rss_mib": 0.0})
            t["wall_s"] += e["wall_s"]
            t["peak_rss_mib"] = max(t["peak_rss_mib"], e["peak_rss_mib"])
        return out


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _peak_mib(reset_worked: bool) -> tuple[float, str]:
    if reset_worked:
        try:
            with open("/proc/self/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1]) / 1024, "phase"
        except OSError:
            pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return (peak / 2**20 if sys.platform == "darwin" else peak / 1024), "process"


@contextmanager
def recording() -> Iterator[PhaseLog]:
    """Collect the phases entered in this block; inside an active recording, that one (an outer caller, such as
    the scale benchmark, then sees every phase of every record)."""
    outer = _active.get()
    if outer is not None:
        yield outer
        return
    log = PhaseLog()
    token = _active.set(log)
    try:
        yield log
    finally:
        _active.reset(token)


@contextmanager
def phase(name: str) -> Iterator[None]:
    """Mark a phase of the active recording (a no-op without one, or inside another phase)."""
    log = _active.get()
    if log is None or log._inside:
        yield
        return
    log._inside = True
    reset = _reset_peak()
    start = time.perf_counter()
    try:
        yield
    finally:
        wall = time.perf_counter() - start
        peak, scope = _peak_mib(reset)
        log._inside = False
        log.entries.append({"phase": name, "wall_s": round(wall, 4), "peak_rss_mib": round(peak, 1),
                            "peak_rss_scope": scope})
