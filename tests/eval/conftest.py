"""Fixtures for the evaluation tests: small synthetic datasets and a tiny MeDSLIP checkpoint."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from medslip import MeDSLIP, MeDSLIPConfig
from medslip.books import anatomy_texts, encode_books, pathology_texts
from medslip.checkpoint import save_checkpoint
from medslip.text import tiny_text_encoder

DATASETS = {"nih-cxr14": 240, "rsna-pneumonia": 160, "siim-acr": 200, "covidx-cxr4": 160}


@pytest.fixture(scope="session")
def small_roots(tmp_path_factory, isolated_cache) -> dict[str, Path]:
    from cxrbench.synth import generate

    base = tmp_path_factory.mktemp("synth")
    return {name: generate(name, base / name, n=n, size=96, seed=3, progress=False) for name, n in DATASETS.items()}


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """A randomly initialised tiny MeDSLIP (ResNet-18, 64 px) in our checkpoint format."""
    torch.manual_seed(0)
    encoder = tiny_text_encoder(width=32)
    book_p, book_a = encode_books(encoder)
    model = MeDSLIP(MeDSLIPConfig(backbone="resnet18", num_layers=1, d_model=32, num_heads=2, dim_feedforward=64,
                                  text_width=32), book_p, book_a)
    path = tmp_path_factory.mktemp("ckpt") / "tiny"
    save_checkpoint(model, path, pathology_texts(), anatomy_texts(), text_encoder=encoder.identity,
                    extra={"config": {"data": {"image_size": 64}}})
    return path
