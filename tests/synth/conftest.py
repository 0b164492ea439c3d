"""Small synthetic corpora shared by the SynthCXR tests (generated once per session)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cxrbench.synth import DATASETS, generate

SMALL = {"nih-cxr14": 40, "rsna-pneumonia": 40, "siim-acr": 40, "covidx-cxr4": 30, "mimic-cxr": 30,
         "medslip-pretrain": 20}


@pytest.fixture(scope="session")
def corpora(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``{dataset: root}`` of small corpora (96 px) written with seed 3."""
    base = tmp_path_factory.mktemp("synth")
    return {d: generate(d, base / d, n=SMALL[d], size=96, seed=3, progress=False) for d in DATASETS}
