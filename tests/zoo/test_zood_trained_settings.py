"""ft and seg end to end on SynthCXR through the encoders of medklip and gloria (random weights, reduced)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

SIZE = 64


@pytest.fixture(scope="module")
def siim_root(tmp_path_factory):
    from cxrbench.synth import generate

    base = tmp_path_factory.mktemp("synth-zood")
    return generate("siim-acr", base / "siim-acr", n=80, size=96, seed=5, progress=False)


@pytest.mark.slow  # trains a U-Net and a classifier per model (minutes on a shared CPU)
@pytest.mark.parametrize("model,checkpoint", [("medklip", "random-reduced"), ("gloria", "random-reduced")])
def test_seg_and_ft_run_on_the_model_encoder(model, checkpoint, siim_root, tmp_path):
    from cxrbench.results import validate_record
    from cxrbench.run import RunOptions, run

    opts = RunOptions(data_root=siim_root, out=tmp_path / "results", n_boot=10, epochs=1, batch_size=8,
                      progress=False, checkpoint=Path(checkpoint), image_size=SIZE, device="cpu")
    for task in ("siim-seg", "siim-ft"):
        record = json.loads(run(model, task, [0.5], [0], opts)[0].read_text())
        validate_record(record)
        assert record["model"]["name"] == model and record["model"]["zoo"]
        assert model in record["training"]["encoder"]
        assert all(v["value"] is not None for v in record["summary"].values())
