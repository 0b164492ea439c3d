"""Supervised initialisations: random and (locally present) ImageNet ResNet-50 for ft and seg."""

from __future__ import annotations

import json

import pytest
import torch
import torchvision

from cxrbench.models.supervised import (SupervisedResNetAdapter, WeightsUnavailable, imagenet_weights_file,
                                          load_imagenet)
from cxrbench.models.base import ClassSpec, UnsupportedSetting

from .conftest import run_options


def test_random_resnet50_runs_segmentation(tmp_path, small_roots):
    from cxrbench.results import validate_record
    from cxrbench.run import run

    adapter = SupervisedResNetAdapter("resnet50-random", image_size=64)
    path = run("resnet50-random", "siim-seg", [0.5], [0], run_options(tmp_path, small_roots["siim-acr"]),
               adapter=adapter)[0]
    record = json.loads(path.read_text())
    validate_record(record)
    assert "random init" in record["training"]["encoder"] and record["model"]["initialisation"].startswith("random")


def test_no_zero_shot_and_the_harness_refuses_zs_tasks(tmp_path, small_roots):
    from cxrbench.run import run

    adapter = SupervisedResNetAdapter("resnet50-random", image_size=64)
    with pytest.raises(UnsupportedSetting):
        adapter.zero_shot(torch.zeros(1, 3, 64, 64), [ClassSpec("Effusion")])
    with pytest.raises(ValueError, match="does not support"):
        run("resnet50-random", "nih-zs", [None], [0], run_options(tmp_path, small_roots["nih-cxr14"]))


def test_imagenet_weights_absent_gives_a_clear_message(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(WeightsUnavailable, match="never downloads"):
        load_imagenet()


def test_imagenet_weights_present_are_loaded_strictly(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    file = imagenet_weights_file("resnet50")
    file.parent.mkdir(parents=True)
    torch.manual_seed(1)
    reference = torchvision.models.resnet50(weights=None)
    torch.save(reference.state_dict(), file)  # stands in for torchvision's file: same name and format
    adapter = load_imagenet(image_size=64)
    encoder = adapter.encoder()
    assert torch.equal(encoder.trunk.layers[0].weight, reference.conv1.weight)
    assert torch.equal(encoder.trunk.layers[6][0].conv1.weight, reference.layer3[0].conv1.weight)
    feats = encoder.trunk(torch.zeros(1, 3, 64, 64))
    assert [f.shape[1] for f in feats] == list(encoder.channels) == [64, 256, 512, 1024]
    assert adapter.describe()["checkpoint_sha256"] and adapter.describe()["weights"] == "IMAGENET1K_V1"
