"""Pre-training throughput of MeDSLIP (images/s), one device, one JSON line per measurement.

    python benchmarks/gpu/pretrain_throughput.py --out gpu.jsonl            # paper config on CUDA
    python benchmarks/gpu/pretrain_throughput.py --compile --out gpu.jsonl  # the same with torch.compile
    python benchmarks/gpu/pretrain_throughput.py --tiny --device cpu        # smoke run on a CPU

Both sources time the code the trainer runs (:class:`medslip.trainer.TrainStep`: bf16 autocast
and channels_last on CUDA, fused AdamW, optional ``torch.compile``):

- ``synthetic``: one batch of random tensors already on the device, stepped repeatedly: the
  model's ceiling, the number the issue's target (>= 1,500 images/s on one H100/H200) is about;
- ``cache``: :func:`medslip.trainer.train` itself on a memory-mapped uint8 array laid out like
  the preprocessing cache, read by DataLoader workers with the paper's augmentations: the rate
  a user gets end to end (the trainer's own per-step timing, warm-up steps excluded).
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
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
from medslip.trainer import TrainConfig, TrainStep, _LossModule, prepare_for_training, train  # noqa: E402

TARGET_IMAGES_PER_S = 1500


def _model(tiny: bool) -> tuple[MeDSLIP, int]:
    if tiny:
        cfg = MeDSLIPConfig(backbone="resnet18", num_layers=1, d_model=64, num_heads=2, dim_feedforward=128,
                            text_width=64)
        return MeDSLIP(cfg, torch.randn(75, 64), torch.randn(51, 64)), 64
    # the paper config: ResNet-50 to layer3, 4 decoder layers of width 256, 768-wide books (BERT)
    return MeDSLIP(MeDSLIPConfig(), torch.randn(75, 768), torch.randn(51, 768)), 224


def _matrices(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.choice([-1, 0, 1], size=(n, 51, 75), p=[0.9, 0.06, 0.04]).astype(np.int8)


def synthetic_step(model: MeDSLIP, size: int, device: torch.device, batch: int, compile_: bool = False,
                   bf16: bool | None = None) -> tuple[TrainStep, dict[str, torch.Tensor]]:
    """The trainer's step for ``model`` on ``device`` and one random batch already there."""
    opt = prepare_for_training(model, device, lr=1e-4, weight_decay=0.02)
    module = _LossModule(model)
    if compile_:
        module = torch.compile(module)
    step = TrainStep(module, opt, device, bf16=bf16)
    g = torch.Generator().manual_seed(0)
    fixed = supervision_from_matrix(torch.from_numpy(_matrices(batch)).long(), 7, g)
    fixed["images"] = torch.randn(batch, 3, size, size, generator=g)
    model.train()
    return step, {k: v.to(device) for k, v in fixed.items()}


def _synthetic(model: MeDSLIP, size: int, device: torch.device, batch: int, steps: int, warmup: int,
               compile_: bool, bf16: bool) -> float:
    step, fixed = synthetic_step(model, size, device, batch, compile_, bf16)
    for _ in range(warmup):
        values = step(fixed)
    if warmup:
        values.tolist()  # waits for the warm-up (and compilation) to finish
    start = time.perf_counter()
    for _ in range(steps):
        values = step(fixed)
    losses = values.tolist()  # one wait, at the end
    elapsed = time.perf_counter() - start
    if not all(np.isfinite(losses)):
        raise RuntimeError(f"non-finite loss in the benchmark: {losses}")
    return elapsed


def _cache(model: MeDSLIP, size: int, device: torch.device, batch: int, steps: int, warmup: int,
           compile_: bool, workers: int) -> float:
    n = batch * (steps + warmup + 2)
    tmp = Path(tempfile.mkdtemp(prefix="medslip-throughput-"))
    store = np.lib.format.open_memmap(tmp / "cache.npy", mode="w+", dtype=np.uint8, shape=(n, 256, 256))
    rng = np.random.default_rng(0)
    for lo in range(0, n, 1024):
        store[lo:lo + 1024] = rng.integers(0, 256, size=store[lo:lo + 1024].shape, dtype=np.uint8)
    store.flush()
    images = np.load(tmp / "cache.npy", mmap_mode="r")
    dataset = PretrainDataset(images, _matrices(n), size, "paper")
    cfg = TrainConfig(epochs=1, batch_size=batch, num_workers=workers, checkpoint_every=10**9, log_every=1,
                      max_steps=warmup + steps, compile=compile_, warmup_epochs=0)
    try:
        result = train(model, dataset, cfg, tmp / "run", device=device, progress=False)
    finally:
        del images, store
        shutil.rmtree(tmp, ignore_errors=True)
    timed = result.history[warmup:]
    return sum(batch / r["images_per_s"] for r in timed)


def run(source: str, device: torch.device, batch: int, steps: int, warmup: int, tiny: bool,
        compile_: bool, workers: int, bf16: bool) -> dict:
    torch.manual_seed(0)
    model, size = _model(tiny)
    cuda = device.type == "cuda"
    if cuda:  # (TrainStep turns on cuDNN autotuning and TF32, as in training)
        torch.cuda.reset_peak_memory_stats(device)
    if source == "synthetic":
        elapsed = _synthetic(model, size, device, batch, steps, warmup, compile_, bf16)
    else:
        elapsed = _cache(model, size, device, batch, steps, warmup, compile_, workers)
    rate = batch * steps / elapsed
    return {
        "benchmark": "medslip_pretrain_throughput", "source": source, "config": "tiny" if tiny else "paper",
        "image_size": size, "batch_size": batch, "steps": steps, "warmup_steps": warmup, "seconds": elapsed,
        "images_per_s": rate, "target_images_per_s": None if tiny else TARGET_IMAGES_PER_S,
        "meets_target": None if tiny or not cuda else bool(rate >= TARGET_IMAGES_PER_S),
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if cuda else platform.processor() or "cpu",
        "peak_memory_gib": torch.cuda.max_memory_allocated(device) / 2**30 if cuda else None,
        "bf16": bf16 if source == "synthetic" else cuda, "compile": compile_,
        "workers": workers if source == "cache" else None, "torch": torch.__version__,
        "cuda": torch.version.cuda, "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--source", choices=["synthetic", "cache", "both"], default="both")
    parser.add_argument("--batch-size", type=int, default=None, help="default 64 (paper) or 8 (tiny)")
    parser.add_argument("--steps", type=int, default=None, help="timed steps (default 200 on CUDA, 3 on CPU)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps first (default 20 on CUDA, 1 on CPU)")
    parser.add_argument("--tiny", action="store_true", help="a tiny config that runs on a CPU in seconds")
    parser.add_argument("--compile", action="store_true", help="torch.compile the loss computation")
    parser.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=None,
                        help="bf16 autocast for the synthetic source (default: on CUDA only; the trainer's rule)")
    parser.add_argument("--workers", type=int, default=8, help="DataLoader workers for the cache source")
    parser.add_argument("--out", type=Path, default=None, help="append the JSON lines to this file")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    if cuda and not torch.cuda.is_available():
        parser.error("CUDA is not available here; pass --device cpu (with --tiny for a quick run)")
    batch = args.batch_size or (8 if args.tiny else 64)
    steps = args.steps or (200 if cuda else 3)
    warmup = args.warmup if args.warmup is not None else (20 if cuda else 1)
    bf16 = cuda if args.bf16 is None else args.bf16
    sources = ["synthetic", "cache"] if args.source == "both" else [args.source]
    for source in sources:
        record = run(source, device, batch, steps, warmup, args.tiny, args.compile,
                     args.workers if cuda else 0, bf16)
        line = json.dumps(record)
        print(line, flush=True)
        if args.out:
            with open(args.out, "a", encoding="utf-8") as handle:
                handle.write(line + "\n")


if __name__ == "__main__":
    main()
