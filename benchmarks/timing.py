"""Timing of a reference measured in the same run as a pytest-benchmark case."""

from __future__ import annotations

import statistics
import time
from typing import Callable


def median_time(fn: Callable[[], object], rounds: int, warmup: bool = True) -> float:
    """Median wall time (s) of ``rounds`` calls of ``fn``, after one warm-up call."""
    if warmup:
        fn()
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)
