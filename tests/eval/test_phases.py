"""Issue 19: per-phase wall time and peak memory (cxrbench.phases), as written into each result record."""

from __future__ import annotations

import time

from cxrbench.phases import phase, recording


def test_phases_are_recorded_only_inside_a_recording_and_do_not_nest():
    with phase("table"):  # no recording: nothing is kept, nothing fails
        pass
    with recording() as log:
        with phase("inference"):
            time.sleep(0.02)
            with phase("metrics"):  # folded into the outer phase
                pass
        with phase("metrics"):
            pass
        with recording() as inner:  # an inner recording is the outer one
            with phase("record"):
                pass
    assert inner is log
    assert [e["phase"] for e in log.entries] == ["inference", "metrics", "record"]
    assert log.entries[0]["wall_s"] >= 0.02
    assert set(log.totals()) == {"inference", "metrics", "record"}


PEAK_SCRIPT = """
import json
import numpy as np
from cxrbench.phases import phase, recording
with recording() as log:
    with phase("cache"):
        block = np.ones(256 * 2**20, dtype=np.uint8)  # 256 MiB, touched
        del block
    with phase("metrics"):
        pass
print(json.dumps(log.entries))
"""


def test_peak_memory_is_per_phase():
    """In a fresh interpreter: a long-lived process (the test run itself) may serve the block from memory it
    already holds, which would not move its peak."""
    import json
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", PEAK_SCRIPT], capture_output=True, text=True, check=True)
    big, small = json.loads(out.stdout.strip().splitlines()[-1])
    assert big["peak_rss_mib"] > 0 and small["peak_rss_mib"] > 0
    if big["peak_rss_scope"] == "phase":  # Linux: the high-water mark was reset between the phases
        assert big["peak_rss_mib"] - small["peak_rss_mib"] > 200
