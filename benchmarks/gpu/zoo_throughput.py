"""Zero-shot throughput of every zoo model, random weights of the released architecture (no weights needed).

    python benchmarks/gpu/zoo_throughput.py [--device cuda] [--batch 64] [--iters 10] [--out zoo_throughput.jsonl]

For each catalog entry whose adapter loads with ``--checkpoint random``: images per second of ``zero_shot`` on a
batch of normalised random images at the model's own size, 14 classes (the NIH set), after two warm-up calls (the
class text embeddings are computed and cached there, as in an evaluation). One JSON line per model; a model that does
not load is reported with the reason.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from cxrbench.models.registry import MODELS  # noqa: E402
from cxrbench.tasks.specs import NIH_CLASSES  # noqa: E402
from cxrbench.zoo.catalog import load_catalog  # noqa: E402


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def measure(name: str, device: torch.device, batch: int, iters: int) -> dict:
    if name not in MODELS:
        return {"model": name, "skipped": "not registered"}
    try:
        adapter = MODELS[name].load(checkpoint=Path("random"), progress=False).to(device)
    except Exception as exc:  # report and go on
        return {"model": name, "skipped": f"{type(exc).__name__}: {exc}"[:300]}
    if "zs" not in adapter.settings:
        return {"model": name, "skipped": "no zs setting"}
    size = adapter.image_size
    images = torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(0))
    classes = list(NIH_CLASSES)
    for _ in range(2):
        adapter.zero_shot(images, classes)
    _sync(device)
    start = time.perf_counter()
    for _ in range(iters):
        adapter.zero_shot(images, classes)
    _sync(device)
    seconds = time.perf_counter() - start
    return {"model": name, "device": str(device), "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
            "image_size": size, "batch": batch, "iters": iters, "images_per_s": round(batch * iters / seconds, 1),
            "precision": "fp32", "rule": adapter.describe().get("zero_shot_rule")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--iters", type=int, default=10)
    parser.add_argument("--models", default=None, help="comma-separated (default: the whole catalog)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    device = torch.device(args.device)
    names = args.models.split(",") if args.models else list(load_catalog())
    lines = []
    for name in names:
        result = measure(name, device, args.batch, args.iters)
        line = json.dumps(result)
        print(line, flush=True)
        lines.append(line)
    if args.out:
        args.out.write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
