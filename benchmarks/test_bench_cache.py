"""Images/s from the preprocessing cache versus decoding the originals every time.

Setting: 24 NIH-like 1024x1024 8-bit PNGs (smooth content plus noise, so they compress like radiographs),
resized to 224 px.  "Decode" = :func:`cxrbench.data.cache.decode_resized` on every file (read PNG, convert,
resize, quantise: what a loader without the cache does per epoch); "cache" = copying every row out of the
memory-mapped array.  The ratio is asserted >= 10 and stored in ``extra_info``.
Run: ``.venv/bin/pytest benchmarks/test_bench_cache.py -s`` (or ``make bench``).
"""

from __future__ import annotations

import statistics
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from benchmarks.timing import median_time
from cxrbench.data.cache import build_cache, decode_resized

N_IMAGES, SOURCE, SIZE = 24, 1024, 224


@pytest.fixture(scope="module")
def png_files(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("bench_png")
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:SOURCE, 0:SOURCE] / SOURCE
    paths = []
    for i in range(N_IMAGES):
        smooth = 128 + 80 * np.sin(6 * xx + i) * np.cos(4 * yy)
        img = np.clip(smooth + rng.normal(0, 6, smooth.shape), 0, 255).astype(np.uint8)
        path = folder / f"{i:08d}_000.png"
        Image.fromarray(img).save(path)
        paths.append(path)
    return paths


def test_cache_vs_decode(benchmark, png_files: list[Path], tmp_path: Path) -> None:
    cache = build_cache(png_files, SIZE, "bench", cache_root=tmp_path, workers=1, progress=False)

    def from_cache() -> None:
        for i in range(len(cache)):
            np.array(cache[i])  # a real copy out of the memory map

    def from_originals() -> None:
        for p in png_files:
            decode_resized(p, SIZE)

    benchmark.pedantic(from_cache, rounds=20, warmup_rounds=1)
    cached_s = statistics.median(benchmark.stats.stats.data)
    decode_s = median_time(from_originals, rounds=3)
    speedup = decode_s / cached_s
    benchmark.extra_info.update({
        "images": N_IMAGES, "cache_images_per_s": N_IMAGES / cached_s,
        "decode_images_per_s": N_IMAGES / decode_s, "speedup": speedup,
    })
    print(f"\ncache: {N_IMAGES / cached_s:,.0f} images/s; decoding originals: {N_IMAGES / decode_s:,.0f} images/s;"
          f" speed-up x{speedup:,.0f}")
    assert speedup >= 10
