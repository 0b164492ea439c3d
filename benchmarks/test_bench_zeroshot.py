"""Zero-shot inference throughput (images/s) of the MeDSLIP adapter, batched vs one image at a time.

Run: ``.venv/bin/python -m pytest benchmarks/test_bench_zeroshot.py --benchmark-only -m "" -s``.
Setting: the demo architecture (ResNet-18, d = 128, N = 2, T = 384), 128 px, the 14 NIH classes, CPU.
"""

from __future__ import annotations

import statistics

import pytest
import torch

from benchmarks.timing import median_time
from cxrbench.models.medslip import MedslipAdapter
from cxrbench.tasks.specs import get_task
from medslip import MeDSLIP, MeDSLIPConfig

N_IMAGES = 64


@pytest.mark.slow
def test_bench_zero_shot_inference(benchmark):
    torch.manual_seed(0)
    cfg = MeDSLIPConfig(backbone="resnet18", d_model=128, num_layers=2, dim_feedforward=256, text_width=384)
    adapter = MedslipAdapter(MeDSLIP(cfg, torch.randn(75, 384), torch.randn(51, 384)), None, 128)
    classes = list(get_task("nih-zs").classes)
    images = torch.randn(N_IMAGES, 3, 128, 128)

    def batched():
        return torch.cat([adapter.zero_shot(images[i : i + 32], classes) for i in range(0, N_IMAGES, 32)])

    def one_by_one():
        return torch.cat([adapter.zero_shot(images[i : i + 1], classes) for i in range(N_IMAGES)])

    torch.testing.assert_close(batched(), one_by_one(), rtol=1e-4, atol=1e-5)
    benchmark.pedantic(batched, rounds=3, warmup_rounds=1)
    ours = statistics.median(benchmark.stats.stats.data)
    ref = median_time(one_by_one, 3)
    benchmark.extra_info.update({"images_per_s_batched": N_IMAGES / ours, "images_per_s_single": N_IMAGES / ref,
                                 "speedup": ref / ours})
    print(f"\nzero-shot: {N_IMAGES / ours:.1f} images/s batched (32) vs {N_IMAGES / ref:.1f} images/s one at a time")
