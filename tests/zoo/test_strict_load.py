"""The grouped strict-load message shared by the zoo loaders."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from baselines.strict_load import StrictLoadMismatch, group_keys, key_group, load_strict
from medslip.checkpoint import CheckpointMismatch


def test_keys_are_grouped_by_module_path_up_to_the_first_index():
    assert key_group("decoder.layers.3.norm1.weight") == "decoder.layers.3"
    assert key_group("res_features.6.0.conv1.weight") == "res_features.6"
    assert key_group("img_encoder.global_embedder.bias") == "img_encoder.global_embedder"
    assert key_group("classifier.weight") == "classifier"
    assert group_keys(["a.0.w", "a.0.b", "b.w"]) == "a.0.* (2), b.* (1)"


def test_load_strict_loads_or_explains_in_one_line():
    model = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))
    good = {k: torch.ones_like(v) for k, v in model.state_dict().items()}
    load_strict(model, good)
    assert torch.equal(model[0].weight, torch.ones(3, 2))
    bad = dict(good)
    bad.pop("2.bias")
    bad["0.weight"] = torch.zeros(4, 2)
    bad["extra.weight"] = torch.zeros(1)
    with pytest.raises(CheckpointMismatch) as info:
        load_strict(model, bad, "x.pth")
    assert isinstance(info.value, StrictLoadMismatch) and info.value.missing == ["2.bias"]
    message = str(info.value)
    assert message.startswith("x.pth does not match the model") and "\n" not in message
    assert "1 missing: 2.* (1)" in message and "1 unexpected: extra.* (1)" in message
    assert "0.weight file [4, 2] vs model [3, 2]" in message
