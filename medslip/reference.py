"""Check our MeDSLIP against a reference fixture of the published implementation.

Usage::

    python -m medslip.reference FIXTURE.safetensors [--tolerance 1e-4]

A fixture holds ``state_dict.<key>`` weights, ``book.pathology`` / ``book.anatomy`` embeddings,
``input.<name>`` batch tensors and ``expected.<output>`` tensors, with the published config, the
image size and the mode in its metadata. The model runs in eval mode; for each output the command
prints the maximum absolute difference and the relative difference (maximum absolute difference
divided by the maximum magnitude of the expected tensor). It exits 0 iff every relative difference
is within the tolerance (1e-4, float32).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file
from torch import Tensor

from medslip.checkpoint import load_state_dict_strict
from medslip.config import MeDSLIPConfig
from medslip.model import BATCH_KEYS, MeDSLIP

LOSS_KEYS = ("loss", "loss_ce_pathology", "loss_cl_pathology", "loss_ce_anatomy", "loss_cl_anatomy", "loss_ap")


def load_fixture(path: str | Path) -> tuple[dict[str, Tensor], dict[str, str]]:
    """All tensors of a fixture and its metadata."""
    path = str(path)
    with safe_open(path, framework="pt") as handle:
        meta = dict(handle.metadata() or {})
    return load_file(path), meta


def load_fixture_model(path: str | Path) -> tuple[MeDSLIP, dict[str, Tensor]]:
    """Our model loaded strictly with the fixture's weights and books (eval mode), and the batch."""
    tensors, meta = load_fixture(path)
    if "config" not in meta:
        raise ValueError(f"{path}: fixture metadata has no 'config'")
    config = MeDSLIPConfig.from_official(json.loads(meta["config"]), text_width=tensors["book.pathology"].shape[1])
    model = MeDSLIP(config)
    state_dict = {k[len("state_dict."):]: v for k, v in tensors.items() if k.startswith("state_dict.")}
    load_state_dict_strict(model, state_dict)
    model.set_books(tensors["book.pathology"], tensors["book.anatomy"])
    model.eval()
    batch = {k[len("input."):]: v for k, v in tensors.items() if k.startswith("input.")}
    missing = [k for k in BATCH_KEYS if k not in batch]
    if missing:
        raise ValueError(f"{path}: fixture lacks inputs {missing}")
    return model, batch


@torch.no_grad()
def model_outputs(model: MeDSLIP, batch: dict[str, Tensor]) -> dict[str, Tensor]:
    """Every output a fixture can hold, computed by our model."""
    losses = model.compute_loss(batch)
    out = model(batch["images"])
    result = {k: losses[k] for k in LOSS_KEYS}
    result["logits_pathology"] = out["logits_pathology"]
    result["logits_anatomy"] = out["logits_anatomy"]
    result["attn_pathology_last"] = out["attn_pathology"][-1]
    result["attn_anatomy_last"] = out["attn_anatomy"][-1]
    return result


def compare(path: str | Path, tolerance: float = 1e-4) -> list[dict]:
    """Rows of (output, shape, max_abs, max_rel, ok) for every ``expected.*`` tensor of the fixture."""
    model, batch = load_fixture_model(path)
    tensors, _ = load_fixture(path)
    ours = model_outputs(model, batch)
    rows = []
    for key in sorted(k for k in tensors if k.startswith("expected.")):
        name = key[len("expected."):]
        expected = tensors[key].double()
        if name not in ours:
            rows.append({"output": name, "shape": list(expected.shape), "max_abs": float("nan"),
                         "max_rel": float("nan"), "ok": False, "note": "not produced by the model"})
            continue
        got = ours[name].double().reshape(expected.shape)
        max_abs = (got - expected).abs().max().item()
        scale = expected.abs().max().item()
        max_rel = max_abs / scale if scale > 0 else (0.0 if max_abs == 0 else float("inf"))
        rows.append({"output": name, "shape": list(expected.shape), "max_abs": max_abs,
                     "max_rel": max_rel, "ok": bool(max_rel <= tolerance), "note": ""})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m medslip.reference",
        description="Compare medslip against a fixture of the published MeDSLIP implementation.",
    )
    parser.add_argument("fixture", type=Path, help="a .safetensors fixture (see shared/fixtures/README.md)")
    parser.add_argument("--tolerance", type=float, default=1e-4, help="maximum relative difference (default 1e-4)")
    args = parser.parse_args(argv)
    if not args.fixture.exists():
        parser.error(f"fixture not found: {args.fixture}")
    from tabulate import tabulate

    rows = compare(args.fixture, args.tolerance)
    table = [[r["output"], "x".join(map(str, r["shape"])), f"{r['max_abs']:.3e}", f"{r['max_rel']:.3e}",
              "ok" if r["ok"] else "FAIL " + r["note"]] for r in rows]
    print(tabulate(table, headers=["output", "shape", "max abs diff", "max rel diff", f"<= {args.tolerance:g}"]))
    ok = bool(rows) and all(r["ok"] for r in rows)
    print(f"\n{sum(r['ok'] for r in rows)}/{len(rows)} outputs match {args.fixture.name}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
