"""The one strict loader of the baselines layer (``baselines.state_dict``): every zoo family reports a mismatch
through it."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from baselines.state_dict import StateDictMismatch, check_keys, load_strict
from medslip.checkpoint import CheckpointMismatch


def test_load_strict_loads_or_explains_grouped():
    model = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))
    good = {k: torch.ones_like(v) for k, v in model.state_dict().items()}
    assert load_strict(model, good) is model
    assert torch.equal(model[0].weight, torch.ones(3, 2))
    bad = dict(good)
    bad.pop("2.bias")
    bad["0.weight"] = torch.zeros(4, 2)
    bad["extra.weight"] = torch.zeros(1)
    with pytest.raises(CheckpointMismatch) as info:
        load_strict(model, bad, source="x.pth")
    assert isinstance(info.value, StateDictMismatch) and info.value.missing == ["2.bias"]
    assert info.value.unexpected == ["extra.weight"] and info.value.misshaped == [("0.weight", (4, 2), (3, 2))]
    message = str(info.value)
    assert message.startswith("state dict does not match the model (x.pth): 1 missing, 1 unexpected, 1 mis-shaped")
    assert "- 2.bias" in message and "- extra.weight" in message and "0.weight: file [4, 2] vs model [3, 2]" in message
    assert torch.equal(model[0].weight, torch.ones(3, 2))  # nothing was loaded


def test_check_keys_takes_shapes_or_tensors_and_assign_casts_to_the_module_dtype():
    with torch.device("meta"):
        model = nn.Linear(2, 3)
    check_keys(model.state_dict(), {"weight": (3, 2), "bias": [3]})
    with pytest.raises(StateDictMismatch, match="bias: file \\[4\\] vs model \\[3\\]"):
        check_keys(model.state_dict(), {"weight": (3, 2), "bias": (4,)}, source="m.json")
    half = {"weight": torch.ones(3, 2, dtype=torch.float16), "bias": torch.zeros(3, dtype=torch.float16)}
    load_strict(model, half)  # a meta module: assigned, and cast to its float32
    assert model.weight.dtype == torch.float32 and not model.weight.is_meta and model.weight.sum().item() == 6.0


@pytest.mark.parametrize("model, manifest", [
    ("biomedclip", "biomedclip_official_state_dict_keys_vit_b16.json"),
    ("chexzero", "chexzero_official_state_dict_keys_vit_b32.json"),
    ("medclip-resnet", "medclip_official_state_dict_keys_resnet50.json"),
    ("medclip-vit", "medclip_official_state_dict_keys_vit_swin_tiny.json"),
])
def test_every_family_reports_a_mismatch_the_same_way(model, manifest, tmp_path, no_network):
    """``cxrbench zoo verify`` on a released key manifest with one key dropped and one added: every family answers
    through the one loader (exit 2, the same grouped report naming both keys); the intact manifest loads."""
    import json
    import re

    from typer.testing import CliRunner

    from cxrbench.cli import app

    from .conftest import WIDE, zoo_fixture

    keys = json.loads(zoo_fixture(manifest).read_text())
    dropped = sorted(keys)[len(keys) // 2]
    good = tmp_path / "good.json"
    good.write_text(json.dumps(keys))
    out = CliRunner().invoke(app, ["zoo", "verify", model, str(good)], env=WIDE)
    assert out.exit_code == 0 and re.search(f"loads? strictly .*as {model}", out.output), out.output
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**{k: v for k, v in keys.items() if k != dropped}, "stray.weight": [2]}))
    out = CliRunner().invoke(app, ["zoo", "verify", model, str(bad)], env=WIDE)
    assert out.exit_code == 2, out.output
    assert f"does not load strictly as {model}" in out.output and "state dict does not match the model" in out.output
    assert "1 unexpected" in out.output and "- stray.weight" in out.output
    assert dropped.rsplit(".", 1)[-1] in out.output and "Traceback" not in out.output
    assert not no_network
