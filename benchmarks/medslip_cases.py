"""The benchmark cases of MeDSLIP (ours and the loop reference), shared by the pytest-benchmark
file and the per-process memory measurement (``python -m benchmarks.medslip_cases --case ... --impl ...``).

Setting of the issue: ResNet-18, 128 px, batch 16, N = 4 decoder layers, 768-d books, CPU.
"""

from __future__ import annotations

import argparse
import json
from typing import Callable

import torch

from benchmarks.loop_reference import loop_compute_loss, loop_losses
from benchmarks.memory import peak_memory_mib
from medslip import MeDSLIP, MeDSLIPConfig
from medslip.sampling import supervision_from_matrix

BATCH, SIZE = 16, 128


def setup(seed: int = 0):
    torch.manual_seed(seed)
    config = MeDSLIPConfig(backbone="resnet18", num_layers=4, text_width=768)
    model = MeDSLIP(config, torch.randn(75, 768), torch.randn(51, 768))
    g = torch.Generator().manual_seed(seed)
    # report-like sparsity: ~4 % present, ~6 % absent cells
    choice = torch.multinomial(torch.tensor([0.90, 0.06, 0.04]), BATCH * 51 * 75, replacement=True, generator=g)
    batch = supervision_from_matrix((choice.view(BATCH, 51, 75) - 1).long(), 7, g)
    batch["images"] = torch.randn(BATCH, 3, SIZE, SIZE, generator=g)
    return model, batch


def loss_case(impl: str) -> Callable[[], dict]:
    """The five loss terms from fixed decoder outputs (forward only)."""
    model, batch = setup()
    model.eval()
    with torch.no_grad():
        x_p, x_a = model.encode_image(batch["images"])
        out = model.decode(x_p, x_a, need_attention=False)
    fp, fa = out["features_pathology"], out["features_anatomy"]
    args = (batch["matrix"], batch["labels_pathology"], batch["labels_anatomy"],
            batch["sample_index_pathology"], batch["sample_index_anatomy"])

    @torch.no_grad()
    def ours():
        return model.loss_terms(fp, fa, *args)

    @torch.no_grad()
    def reference():
        return loop_losses(model, fp, fa, batch)

    return ours if impl == "ours" else reference


def train_step_case(impl: str) -> Callable[[], torch.Tensor]:
    """Forward + backward + AdamW step on the whole model."""
    model, batch = setup()
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.02)
    compute = model.compute_loss if impl == "ours" else (lambda b: loop_compute_loss(model, b))

    def run():
        opt.zero_grad(set_to_none=True)
        loss = compute(batch)["loss"]
        loss.backward()
        opt.step()
        return loss

    return run


CASES = {"loss": loss_case, "train_step": train_step_case}


def main() -> None:
    parser = argparse.ArgumentParser(description="peak memory of one benchmark case, in this process")
    parser.add_argument("--case", choices=sorted(CASES), required=True)
    parser.add_argument("--impl", choices=["ours", "reference"], required=True)
    args = parser.parse_args()
    fn = CASES[args.case](args.impl)
    fn()  # warm-up: optimizer state, allocator pools
    print(json.dumps({"peak_mib": peak_memory_mib(fn)}))


if __name__ == "__main__":
    main()
