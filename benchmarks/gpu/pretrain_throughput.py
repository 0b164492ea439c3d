"""Pre-training throughput of MeDSLIP (images/s), one device, one JSON line out.

    python benchmarks/gpu/pretrain_throughput.py                    # paper config on CUDA
    python benchmarks/gpu/pretrain_throughput.py --tiny --device cpu # smoke run on a CPU

Two sources: ``synthetic`` (random tensors already on the device: the model's ceiling) and
``cache`` (uint8 images from a memory-mapped preprocessing-cache-like array, resized and
normalised on the fly by a DataLoader with the paper's augmentations: the end-to-end rate).
Steps are full training steps (forward, backward, fused AdamW on CUDA), bf16 autocast and
channels_last on CUDA, optional ``--compile``. The issue's target: >= 1,500 images/s on one
H100/H200-class GPU for the synthetic source.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from medslip import MeDSLIP, MeDSLIPConfig  # noqa: E402
from medslip.pretrain import PretrainDataset  # noqa: E402
from medslip.sampling import supervision_from_matrix  # noqa: E402


def _model(tiny: bool) -> tuple[MeDSLIP, int]:
    if tiny:
        cfg = MeDSLIPConfig(backbone="resnet18", num_layers=1, d_model=64, num_heads=2, dim_feedforward=128,
                            text_width=64)
        return MeDSLIP(cfg, torch.randn(75, 64), torch.randn(51, 64)), 64
    return MeDSLIP(MeDSLIPConfig(), torch.randn(75, 768), torch.randn(51, 768)), 224


def _matrices(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.choice([-1, 0, 1], size=(n, 51, 75), p=[0.9, 0.06, 0.04]).astype(np.int8)


def run(source: str, device: torch.device, batch: int, steps: int, warmup: int, tiny: bool,
        compile_: bool, workers: int) -> dict:
    torch.manual_seed(0)
    model, size = _model(tiny)
    cuda = device.type == "cuda"
    model.to(device)
    if cuda:
        model.to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.02, **({"fused": True} if cuda else {}))
    step_fn = model.compute_loss
    if compile_:
        step_fn = torch.compile(model.compute_loss)

    if source == "synthetic":
        g = torch.Generator().manual_seed(0)
        sup = supervision_from_matrix(torch.from_numpy(_matrices(batch)).long(), 7, g)
        sup["images"] = torch.randn(batch, 3, size, size, generator=g)
        fixed = {k: v.to(device) for k, v in sup.items()}

        def batches():
            while True:
                yield fixed
    else:
        n = max(batch * 8, 256)
        tmp = Path(tempfile.mkdtemp())
        store = np.lib.format.open_memmap(tmp / "cache.npy", mode="w+", dtype=np.uint8, shape=(n, 256, 256))
        store[:] = np.random.default_rng(0).integers(0, 256, size=store.shape, dtype=np.uint8)
        store.flush()
        images = np.load(tmp / "cache.npy", mmap_mode="r")
        ds = PretrainDataset(images, _matrices(n), size, "paper")
        loader = torch.utils.data.DataLoader(ds, batch_size=batch, shuffle=True, drop_last=True, num_workers=workers,
                                             pin_memory=cuda, persistent_workers=workers > 0)

        def batches():
            while True:
                for b in loader:
                    yield {k: v.to(device, non_blocking=True) for k, v in b.items()}

    it = batches()

    def step():
        b = next(it)
        if cuda:
            b["images"] = b["images"].contiguous(memory_format=torch.channels_last)
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=cuda):
            loss = step_fn(b)["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(warmup):
        step()
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if cuda:
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - start
    return {
        "benchmark": "medslip_pretrain_throughput", "source": source, "config": "tiny" if tiny else "paper",
        "image_size": size, "batch_size": batch, "steps": steps, "seconds": elapsed,
        "images_per_s": batch * steps / elapsed, "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if cuda else platform.processor() or "cpu",
        "peak_memory_gib": torch.cuda.max_memory_allocated(device) / 2**30 if cuda else None,
        "bf16": cuda, "compile": compile_, "torch": torch.__version__,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--source", choices=["synthetic", "cache", "both"], default="both")
    parser.add_argument("--batch-size", type=int, default=None, help="default 64 (paper) or 8 (tiny)")
    parser.add_argument("--steps", type=int, default=None, help="timed steps (default 100 on CUDA, 3 on CPU)")
    parser.add_argument("--warmup", type=int, default=None)
    parser.add_argument("--tiny", action="store_true", help="a tiny config that runs on a CPU in seconds")
    parser.add_argument("--compile", action="store_true", help="torch.compile the loss computation")
    parser.add_argument("--workers", type=int, default=8, help="DataLoader workers for the cache source")
    parser.add_argument("--out", type=Path, default=None, help="append the JSON lines to this file")
    args = parser.parse_args()
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    batch = args.batch_size or (8 if args.tiny else 64)
    steps = args.steps or (100 if cuda else 3)
    warmup = args.warmup if args.warmup is not None else (10 if cuda else 1)
    sources = ["synthetic", "cache"] if args.source == "both" else [args.source]
    for source in sources:
        record = run(source, device, batch, steps, warmup, args.tiny, args.compile, args.workers if cuda else 0)
        line = json.dumps(record)
        print(line, flush=True)
        if args.out:
            with open(args.out, "a", encoding="utf-8") as handle:
                handle.write(line + "\n")


if __name__ == "__main__":
    main()
