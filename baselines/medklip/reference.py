"""Reproduce a MedKLIP fixture made with the published code (``medklip_official_*.safetensors``).

The fixture's ``state_dict.*`` goes through the same strict loader as a released file (given the
``module.`` prefix of the released layout first, so the prefix handling is exercised too); the stored book
replaces the text encoder. Every ``expected.*`` tensor is compared.
"""

from __future__ import annotations

import json

import torch
from torch import Tensor

from baselines.medklip.checkpoint import PREFIX, infer_config, load_state_dict_into_model, unwrap_state_dict
from baselines.medklip.model import MedKLIPConfig, prob_present
from baselines.reference import Check, prefixed

#: Tolerances (float32 on CPU; the fixture was made in float32).
RTOL = 1e-5
ATOL_PROB = 1e-6


def build(tensors: dict[str, Tensor], meta: dict[str, str]):
    state = {PREFIX + k: v for k, v in prefixed(tensors, "state_dict.").items()}
    released_layout = {"model": state, "optimizer": {"state": {}}, "epoch": 0}
    state_dict = unwrap_state_dict(released_layout, "fixture")
    official = json.loads(meta.get("config", "{}"))
    config = MedKLIPConfig.from_official(official, text_width=int(tensors["book.pathology"].shape[1]))
    inferred = infer_config(state_dict)
    if inferred.backbone != config.backbone:
        raise ValueError(f"fixture config says {config.backbone}, its weights are {inferred.backbone}")
    return load_state_dict_into_model(state_dict, tensors["book.pathology"].float(), config, what="fixture")


def reproduce(tensors: dict[str, Tensor], meta: dict[str, str]) -> list[Check]:
    model = build(tensors, meta)
    with torch.no_grad():
        out = model(tensors["input.images"].float(), need_attention=True)
    checks = [Check("logits_pathology", tensors["expected.logits_pathology"], out["logits"], rtol=RTOL),
              Check("prob_present", tensors["expected.prob_present"], prob_present(out["logits"]), atol=ATOL_PROB)]
    for i, attn in enumerate(out["attention"]):
        name = f"expected.attn_pathology_layer{i}"
        if name in tensors:
            checks.append(Check(name[len("expected."):], tensors[name], attn, rtol=RTOL))
    missing = [k for k in tensors if k.startswith("expected.")
               and k[len("expected."):] not in {c.name for c in checks}]
    if missing:
        raise ValueError(f"fixture tensors this reproduction does not compute: {missing}")
    return checks


__all__ = ["build", "reproduce"]
