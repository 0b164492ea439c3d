"""CUDA code paths of the trainer that the CPU test suite cannot reach, checked in about a minute.

    python benchmarks/gpu/cuda_smoke.py --out cuda_smoke.jsonl

1. The same model and batch give the same loss terms in fp32 on CUDA as on the CPU (TF32 off).
2. Under bf16 autocast (what training uses on CUDA) the terms stay close to fp32.
3. :func:`medslip.trainer.train` on CUDA (bf16, channels_last, fused AdamW, pinned memory, two
   DataLoader workers) runs, its loss falls on a small fixed set, ``state.pt`` reloads with
   ``weights_only=True`` and ``--resume`` continues to the planned step count.
4. The same with ``compile=True`` (skipped with ``--no-compile``).

Prints one JSON line per check and exits non-zero when a check fails.
"""

from __future__ import annotations

import argparse
import json
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
from medslip.trainer import STATE_FILE, TrainConfig, train  # noqa: E402


def _small_model(seed: int = 0) -> MeDSLIP:
    torch.manual_seed(seed)
    cfg = MeDSLIPConfig(backbone="resnet18", num_layers=2, d_model=64, num_heads=4, dim_feedforward=128,
                        text_width=32)
    g = torch.Generator().manual_seed(seed)
    return MeDSLIP(cfg, torch.randn(75, 32, generator=g), torch.randn(51, 32, generator=g))


def _batch(n: int, size: int, seed: int = 0) -> dict[str, torch.Tensor]:
    rng = np.random.default_rng(seed)
    matrix = torch.from_numpy(rng.choice([-1, 0, 1], size=(n, 51, 75), p=[0.85, 0.09, 0.06]))
    batch = supervision_from_matrix(matrix, 7, torch.Generator().manual_seed(seed))
    batch["images"] = torch.from_numpy(rng.standard_normal((n, 3, size, size)).astype(np.float32))
    return batch


def check_devices_agree() -> dict:
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    model = _small_model().eval()
    batch = _batch(4, 96)
    with torch.no_grad():
        cpu = {k: float(v) for k, v in model.compute_loss(batch).items()}
        model.cuda()
        gpu_batch = {k: v.cuda() for k, v in batch.items()}
        gpu = {k: float(v) for k, v in model.compute_loss(gpu_batch).items()}
        with torch.autocast("cuda", dtype=torch.bfloat16):
            bf16 = {k: float(v) for k, v in model.compute_loss(gpu_batch).items()}
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    rel = max(abs(gpu[k] - cpu[k]) / max(abs(cpu[k]), 1e-6) for k in cpu)
    rel_bf16 = max(abs(bf16[k] - gpu[k]) / max(abs(gpu[k]), 1e-6) for k in gpu)
    return {"check": "cuda_fp32_equals_cpu_and_bf16_close", "max_rel_fp32": rel, "max_rel_bf16": rel_bf16,
            "ok": rel < 1e-4 and rel_bf16 < 5e-2, "cpu": cpu, "cuda_fp32": gpu, "cuda_bf16": bf16}


def check_training(compile_: bool, device: str = "cuda", n: int = 64, batch: int = 16, epochs: int = 12,
                   stop: int = 20) -> dict:
    """Train ``stop`` steps, reload ``state.pt``, resume to the end; the loss must fall."""
    rng = np.random.default_rng(1)
    size = 96
    images = (rng.random((n, 112, 112)) * 255).astype(np.uint8)
    matrices = rng.choice([-1, 0, 1], size=(n, 51, 75), p=[0.85, 0.09, 0.06]).astype(np.int8)
    dataset = PretrainDataset(images, matrices, size, "light")
    cfg = TrainConfig(epochs=epochs, batch_size=batch, lr=3e-4, warmup_epochs=1, num_workers=2,
                      checkpoint_every=10, log_every=1, compile=compile_)
    total = epochs * (n // batch)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        first = train(_small_model(), dataset, cfg, run, device=device, progress=False, stop_after=stop)
        state = torch.load(run / STATE_FILE, map_location="cpu", weights_only=True)
        resumed = train(_small_model(), dataset, cfg, run, device=device, progress=False, resume=True)
        history = first.history + resumed.history
        lines = (run / "metrics.jsonl").read_text().splitlines()
    losses = [h["loss"] for h in history]
    k = max(1, min(4, len(losses) // 3))
    early, late = float(np.mean(losses[:k])), float(np.mean(losses[-k:]))
    ok = (state["global_step"] == stop and resumed.global_step == total and len(lines) == total and late < early
          and all(np.isfinite(losses)))
    return {"check": "cuda_train_resume" + ("_compile" if compile_ else ""), "ok": bool(ok), "device": device,
            "steps": resumed.global_step, "loss_first": early, "loss_last": late,
            "images_per_s_last": history[-1]["images_per_s"], "seconds": time.perf_counter() - start}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=None, help="append the JSON lines to this file")
    parser.add_argument("--cpu-dry-run", action="store_true",
                        help="run only the training check on the CPU (to check this script without a GPU)")
    parser.add_argument("--compile", action=argparse.BooleanOptionalAction, default=True,
                        help="also check training under torch.compile (default on)")
    args = parser.parse_args()
    if args.cpu_dry_run:  # a short run of the training check on the CPU: checks this script, not CUDA
        record = check_training(False, "cpu", n=32, batch=8, epochs=3, stop=5)
        line = json.dumps(record)
        print(line, flush=True)
        if args.out:
            with open(args.out, "a", encoding="utf-8") as handle:
                handle.write(line + "\n")
        return 0 if record["ok"] else 1
    if not torch.cuda.is_available():
        print("CUDA is not available: nothing to check here (try --cpu-dry-run)", file=sys.stderr)
        return 2
    checks = [check_devices_agree, lambda: check_training(False)]
    if args.compile:
        checks.append(lambda: check_training(True))
    failed = 0
    for check in checks:
        try:
            record = check()
        except Exception as exc:  # report and go on: one JSON line per check
            record = {"check": getattr(check, "__name__", "check"), "ok": False, "error": repr(exc)[:2000]}
        record.update(device_name=torch.cuda.get_device_name(), torch=torch.__version__)
        failed += not record["ok"]
        line = json.dumps(record)
        print(line, flush=True)
        if args.out:
            with open(args.out, "a", encoding="utf-8") as handle:
                handle.write(line + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
