"""PubMedCLIP: its wrapped checkpoint loads strictly, both rules, nih-zs / nih-ft end to end offline."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from baselines.chexzero.model import random_openai_clip
from cxrbench.models.base import ClassSpec

from .conftest import run_options


def _model():
    from cxrbench.models.chexzero import reduced_config

    return random_openai_clip(reduced_config("pubmedclip"), seed=3)


def test_the_training_wrapper_loads_and_both_rules_score(tmp_path):
    from cxrbench.models.pubmedclip import load

    model = _model()
    opt = torch.optim.Adam(model.parameters(), lr=1e-5)
    path = tmp_path / "best_model.pth"
    torch.save({"best_epoch": 3, "state_dict": model.state_dict(), "optimizer_state_dict": opt.state_dict(),
                "best_loss": 0.5}, path)
    classes = [ClassSpec("Effusion"), ClassSpec("Mass"), ClassSpec("Nodule")]
    images = torch.randn(2, 3, 96, 96)
    adapter = load(path)
    p = adapter.zero_shot(images, classes)
    assert torch.allclose(p.sum(-1), torch.ones(2), atol=1e-5)  # a softmax over the classes
    pair = load(path, zero_shot_rule="prompt-pair-softmax").zero_shot(images, classes)
    assert pair.shape == (2, 3) and not torch.allclose(pair.sum(-1), torch.ones(2), atol=1e-3)
    assert adapter.describe()["weights"] == "released" and len(adapter.describe()["checkpoint_sha256"]) == 64


@pytest.mark.parametrize("task", ["nih-zs", "nih-ft"])
def test_end_to_end_on_synthcxr_offline(task, tmp_path, nih_root, no_network):
    from cxrbench.results import validate_record
    from cxrbench.run import run

    path = run("pubmedclip", task, [None], [0], run_options(tmp_path, nih_root, checkpoint=Path("random-reduced")))[0]
    record = json.loads(path.read_text())
    validate_record(record)
    assert record["model"]["zoo"] and record["model"]["weights"] == "random"
    assert record["model"]["zero_shot_rule"] == "clip-class-softmax"
    assert not no_network
