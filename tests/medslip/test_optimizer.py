"""Pre-training optimizer: the published parameter groups (no weight decay on biases and 1-D parameters)."""

from __future__ import annotations

from pathlib import Path

import torch

from medslip import MeDSLIP, MeDSLIPConfig
from medslip.trainer import TrainConfig, prepare_for_training


def _tiny() -> MeDSLIP:
    torch.manual_seed(0)
    return MeDSLIP(MeDSLIPConfig(backbone="resnet18", num_layers=1, d_model=32, num_heads=2, dim_feedforward=64,
                                 text_width=32))


def test_biases_and_1d_parameters_are_not_decayed() -> None:
    model = _tiny()
    optimizer = prepare_for_training(model, torch.device("cpu"), lr=1e-2, weight_decay=0.5)
    decay = {id(p) for g in optimizer.param_groups if g["weight_decay"] > 0 for p in g["params"]}
    no_decay = {id(p) for g in optimizer.param_groups if g["weight_decay"] == 0 for p in g["params"]}
    named = dict(model.named_parameters())
    assert decay and no_decay and not decay & no_decay
    assert decay | no_decay == {id(p) for p in named.values()}
    for name, p in named.items():
        assert (id(p) in no_decay) == (p.ndim <= 1 or name.endswith(".bias")), name
    assert any("norm" in n or "bn" in n for n, p in named.items() if id(p) in no_decay)

    # behaviour: with zero gradients AdamW only applies its decoupled decay, so 1-D parameters stay put
    before = {n: p.detach().clone() for n, p in named.items()}
    for p in named.values():
        p.grad = torch.zeros_like(p)
    optimizer.step()
    for name, p in named.items():
        if p.ndim <= 1:
            torch.testing.assert_close(p, before[name], rtol=0, atol=0, msg=name)
        elif before[name].abs().sum() > 0:
            torch.testing.assert_close(p, before[name] * (1 - 1e-2 * 0.5), msg=name)


def test_paper_config_uses_the_published_groups_and_the_old_behaviour_stays_available() -> None:
    from cxrbench.config import load_yaml
    from medslip.trainer import parameter_groups

    paper = load_yaml((Path(__file__).resolve().parents[2] / "cxrbench" / "configs" / "medslip" / "paper.yaml")
                      .read_text())
    assert paper["train"]["no_decay_1d"] is True and TrainConfig().no_decay_1d is True
    groups = parameter_groups(_tiny(), 0.02, no_decay_1d=False)
    assert len(groups) == 1 and groups[0]["weight_decay"] == 0.02
