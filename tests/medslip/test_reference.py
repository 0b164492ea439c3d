"""The reference command against the published implementation's fixture and other fixtures."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file, save_file
from safetensors import safe_open
from torch.utils._python_dispatch import TorchDispatchMode

from medslip.reference import load_fixture_model, main

from .fixture_factory import make_fixture


def test_reference_command_on_shared_fixture(shared_fixture):
    proc = subprocess.run([sys.executable, "-m", "medslip.reference", str(shared_fixture)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "10/10 outputs match" in proc.stdout


@pytest.mark.parametrize("seed,batch,size", [(1, 3, 128), (2, 5, 160)])
def test_reference_on_other_fixtures(tmp_path, seed, batch, size, capsys):
    path = make_fixture(tmp_path / f"fx{seed}.safetensors", seed=seed, batch=batch, size=size)
    assert main([str(path)]) == 0
    assert "10/10 outputs match" in capsys.readouterr().out


def test_reference_fails_on_a_perturbed_expectation(shared_fixture, tmp_path, capsys):
    tensors = load_file(str(shared_fixture))
    with safe_open(str(shared_fixture), "pt") as handle:
        meta = handle.metadata()
    tensors["expected.loss_cl_anatomy"] = tensors["expected.loss_cl_anatomy"] * 1.001
    bad = tmp_path / "bad.safetensors"
    save_file(tensors, str(bad), metadata=meta)
    assert main([str(bad)]) == 1
    assert "FAIL" in capsys.readouterr().out


class _LargestTensor(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else [out]:
            if isinstance(t, torch.Tensor):
                self.largest = max(self.largest, t.numel())
        return out


def test_compute_loss_never_builds_b_a_p_t_and_never_mutates(shared_fixture):
    model, batch = load_fixture_model(shared_fixture)
    before = {k: v.clone() for k, v in batch.items()}
    B, T = batch["images"].shape[0], model.pathology_book.shape[1]
    recorder = _LargestTensor()
    with recorder:
        losses = model.compute_loss(batch)
    assert recorder.largest < B * 51 * 75 * T
    # the largest intermediate is the backbone activation, far below B x A x P x T
    assert recorder.largest <= B * 64 * 64 * 64
    for key, value in batch.items():
        assert torch.equal(value, before[key]), f"compute_loss modified batch[{key!r}]"
    assert torch.isfinite(losses["loss"])
