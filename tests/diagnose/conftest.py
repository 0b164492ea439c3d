"""Fixtures for the diagnose tests: a small counterfactual set and tiny random checkpoints."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch


@pytest.fixture(scope="session")
def cset():
    from cxrbench.synth.counterfactual import make_counterfactual_set

    return make_counterfactual_set(n=24, size=96, seed=1)


def _save(model_cls, path: Path) -> Path:
    from medslip import MeDSLIPConfig
    from medslip.books import anatomy_texts, encode_books, pathology_texts
    from medslip.checkpoint import save_checkpoint
    from medslip.text import tiny_text_encoder

    torch.manual_seed(0)
    encoder = tiny_text_encoder(width=32)
    model = model_cls(MeDSLIPConfig(backbone="resnet18", num_layers=1, d_model=32, num_heads=2, dim_feedforward=64,
                                    text_width=32), *encode_books(encoder))
    save_checkpoint(model, path, pathology_texts(), anatomy_texts(), text_encoder=encoder.identity,
                    extra={"config": {"data": {"image_size": 64}}})
    return path


@pytest.fixture(scope="session")
def tiny_medslip(tmp_path_factory) -> Path:
    """A randomly initialised tiny MeDSLIP (ResNet-18, 64 px) in our checkpoint format."""
    from medslip import MeDSLIP

    return _save(MeDSLIP, tmp_path_factory.mktemp("ckpt") / "medslip")


@pytest.fixture(scope="session")
def tiny_single_stream(tmp_path_factory) -> Path:
    from baselines.single_stream.model import SingleStreamMeDSLIP

    return _save(SingleStreamMeDSLIP, tmp_path_factory.mktemp("ckpt") / "single")
