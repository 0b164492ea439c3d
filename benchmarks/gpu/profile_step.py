"""Where a MeDSLIP training step spends its time: a torch.profiler table of the paper config.

    python benchmarks/gpu/profile_step.py --out profile.txt             # CUDA, paper config
    python benchmarks/gpu/profile_step.py --tiny --device cpu --out p.txt

Times a few :class:`medslip.trainer.TrainStep` calls on one synthetic batch already on the device
(after warm-up) and writes the operators sorted by device time (CPU time on a CPU), plus the
step's wall time. Meant to be run beside the throughput benchmark, so that a missed target comes
back with the data needed to act on it, without another device session.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.gpu.pretrain_throughput import _model, synthetic_step  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--tiny", action="store_true", help="the tiny config (CPU smoke run)")
    parser.add_argument("--batch-size", type=int, default=None, help="default 64 (paper) or 4 (tiny)")
    parser.add_argument("--steps", type=int, default=5, help="profiled steps (after 5 warm-up steps)")
    parser.add_argument("--rows", type=int, default=40, help="operators listed")
    parser.add_argument("--out", type=Path, required=True, help="text file to write")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    batch = args.batch_size or (4 if args.tiny else 64)
    torch.manual_seed(0)
    model, size = _model(args.tiny)
    step, fixed = synthetic_step(model, size, device, batch)
    for _ in range(5):
        step(fixed)
    if cuda:
        torch.cuda.synchronize()
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    start = time.perf_counter()
    with profile(activities=activities, record_shapes=False) as prof:
        for _ in range(args.steps):
            values = step(fixed)
        values.tolist()
    wall = (time.perf_counter() - start) / args.steps
    sort = "self_cuda_time_total" if cuda else "self_cpu_time_total"
    table = prof.key_averages().table(sort_by=sort, row_limit=args.rows)
    header = (f"MeDSLIP training step, {'tiny' if args.tiny else 'paper'} config, batch {batch}, {size} px, "
              f"device {torch.cuda.get_device_name(device) if cuda else 'cpu'}, torch {torch.__version__}\n"
              f"wall time per step under the profiler: {wall * 1000:.1f} ms ({batch / wall:.0f} images/s; the "
              f"profiler adds overhead: the throughput benchmark is the reference)\n\n")
    args.out.write_text(header + table + "\n", encoding="utf-8")
    print(header + "\n".join(table.splitlines()[:15]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
