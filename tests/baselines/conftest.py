"""Fixtures for the baseline tests: an isolated cache and small synthetic corpora."""

from __future__ import annotations

from pathlib import Path

import pytest

from cxrbench.run import RunOptions

DATASETS = {"nih-cxr14": 160, "siim-acr": 120, "medslip-pretrain": 48}


@pytest.fixture(scope="session")
def small_roots(tmp_path_factory, isolated_cache) -> dict[str, Path]:
    from cxrbench.synth import generate

    base = tmp_path_factory.mktemp("synth")
    return {name: generate(name, base / name, n=n, size=96, seed=5, progress=False) for name, n in DATASETS.items()}


def run_options(tmp_path: Path, root: Path, **kw) -> RunOptions:
    """Fast evaluation options: few bootstrap draws, one epoch, no progress bars."""
    base = dict(data_root=root, out=tmp_path / "results", n_boot=20, epochs=1, batch_size=8, progress=False)
    base.update(kw)
    return RunOptions(**base)
