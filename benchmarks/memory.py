"""Peak resident memory of a call, on Linux, without an external profiler.

Each measurement runs in a fresh Python process started with ``MALLOC_MMAP_THRESHOLD_=65536``, so
that glibc serves large tensors with mmap and returns them to the system when freed: resident
memory then tracks live memory. Inside it, writing ``5`` to ``/proc/self/clear_refs`` resets the
peak RSS (VmHWM) to the current RSS after setup and one warm-up call; the peak reached by the
measured call minus the RSS before it is that call's peak working memory.
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def peak_memory_mib(fn: Callable[[], object]) -> float:
    """Extra peak RSS (MiB) while running ``fn`` once, in this process."""
    gc.collect()
    Path("/proc/self/clear_refs").write_text("5")
    before = _status_kib("VmRSS")
    fn()
    return (_status_kib("VmHWM") - before) / 1024.0


def memory_supported() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        _status_kib("VmHWM")
        return True
    except (OSError, RuntimeError):
        return False


def peak_memory_in_subprocess(module: str, case: str, impl: str) -> float:
    """Run ``python -m MODULE --case CASE --impl IMPL`` (which prints {"peak_mib": x}) and return x."""
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536", PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-m", module, "--case", case, "--impl", impl],
                          capture_output=True, text=True, env=env, cwd=ROOT, check=True)
    return float(json.loads(proc.stdout.strip().splitlines()[-1])["peak_mib"])
