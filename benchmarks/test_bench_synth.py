"""SynthCXR renderer throughput (target: >= 200 images/s at 256 x 256 on one core).

Run: ``.venv/bin/pytest benchmarks/test_bench_synth.py --benchmark-only``
"""

from __future__ import annotations

import numpy as np

from cxrbench.synth import render_case

BATCH = 50


def test_bench_render_256(benchmark):
    rng = np.random.default_rng(0)
    render_case(rng, "nih", height=256)  # build the cached grids and textures

    def run() -> None:
        for _ in range(BATCH):
            render_case(rng, "nih", height=256)

    benchmark.pedantic(run, rounds=5, iterations=1)
    images_per_s = BATCH / benchmark.stats.stats.mean
    benchmark.extra_info["images_per_s"] = images_per_s
    print(f"\nSynthCXR render 256 px: {images_per_s:.0f} images/s")
    assert images_per_s >= 200
