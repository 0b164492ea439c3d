"""Run under ``torchrun --nproc_per_node 2``: trains a few steps with DDP (gloo) and writes each
rank's parameter checksum to OUT/rank<r>.json."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from medslip import MeDSLIP, MeDSLIPConfig
from medslip.pretrain import PretrainDataset
from medslip.trainer import TrainConfig, distributed_context, parameters_checksum, train


def main(out: Path) -> None:
    rank, world, _ = distributed_context()
    rng = np.random.default_rng(0)
    images = [(rng.random((48, 48)) * 255).astype(np.uint8) for _ in range(32)]
    matrices = rng.choice([-1, 0, 1], size=(32, 51, 75), p=[0.9, 0.06, 0.04]).astype(np.int8)
    torch.manual_seed(0)  # same initial weights on every rank
    model = MeDSLIP(MeDSLIPConfig(backbone="resnet18", num_layers=1, d_model=32, num_heads=2,
                                  dim_feedforward=64, text_width=16), torch.randn(75, 16), torch.randn(51, 16))
    initial = parameters_checksum(model)
    cfg = TrainConfig(epochs=1, batch_size=4, num_workers=0, log_every=1, warmup_epochs=0, lr=1e-3)
    result = train(model, PretrainDataset(images, matrices, 48, "light"), cfg, out / "run", progress=False)
    (out / f"rank{rank}.json").write_text(json.dumps({
        "rank": rank, "world": world, "steps": result.global_step,
        "initial": initial, "final": parameters_checksum(model),
    }))
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
