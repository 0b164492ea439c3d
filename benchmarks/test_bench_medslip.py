"""MeDSLIP speed and memory against the per-(sample, query) loop reference.

Setting of the issue: ResNet-18, 128 px, batch 16, N = 4 decoder layers, 768-d books, CPU.
Each benchmark times our implementation with pytest-benchmark, times the loop reference in the
same run, measures both peak memories in fresh processes (see ``benchmarks/memory.py``), and stores
everything with the ratios in ``extra_info`` (saved with ``--benchmark-json``; printed with ``-s``).
Run: ``make bench``.
"""

from __future__ import annotations

import statistics

import pytest
import torch

from benchmarks.medslip_cases import loss_case, train_step_case
from benchmarks.memory import memory_supported, peak_memory_in_subprocess
from benchmarks.timing import median_time


def _record(benchmark, name, ours_fn, ref_fn, rounds):
    benchmark.pedantic(ours_fn, rounds=rounds, warmup_rounds=1)
    ours = statistics.median(benchmark.stats.stats.data)
    ref = median_time(ref_fn, rounds)
    info = {f"{name}_ours_s": ours, f"{name}_reference_s": ref, f"{name}_speedup": ref / ours}
    line = f"\n{name}: ours {ours * 1e3:.1f} ms, loop reference {ref * 1e3:.1f} ms, speed-up x{ref / ours:.1f}"
    if memory_supported():
        mem_ours = peak_memory_in_subprocess("benchmarks.medslip_cases", name, "ours")
        mem_ref = peak_memory_in_subprocess("benchmarks.medslip_cases", name, "reference")
        info.update({f"{name}_ours_peak_mib": mem_ours, f"{name}_reference_peak_mib": mem_ref,
                     f"{name}_memory_ratio": mem_ref / max(mem_ours, 1e-6)})
        line += f"; peak memory ours {mem_ours:.0f} MiB vs reference {mem_ref:.0f} MiB"
    benchmark.extra_info.update(info)
    print(line)


@pytest.mark.slow
def test_bench_loss_computation(benchmark):
    ours, reference = loss_case("ours"), loss_case("reference")
    torch.testing.assert_close(ours()["loss"], reference()["loss"], rtol=1e-5, atol=1e-4)
    _record(benchmark, "loss", ours, reference, rounds=5)


@pytest.mark.slow
def test_bench_training_step(benchmark):
    _record(benchmark, "train_step", train_step_case("ours"), train_step_case("reference"), rounds=3)
