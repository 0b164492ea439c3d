"""Shared test configuration: the repository root on sys.path (for ``benchmarks``), fixture paths."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


@pytest.fixture(scope="session", autouse=True)
def isolated_cache(tmp_path_factory):
    """Keep every test's caches (synthetic corpora, image caches, books, demo runs) out of the user's cache."""
    mp = pytest.MonkeyPatch()
    mp.setenv("CXRBENCH_CACHE", str(tmp_path_factory.mktemp("cxrbench-cache")))
    yield
    mp.undo()


@pytest.fixture(scope="session")
def shared_fixture() -> Path:
    """The published implementation's fixture from ../shared (skips, saying why, when absent)."""
    path = SHARED / "fixtures" / "medslip_official_small_seed0.safetensors"
    if not path.exists():
        pytest.skip(f"reference fixture not found at {path} (CI provides ../shared beside the project)")
    return path


@pytest.fixture(scope="session")
def official_keys_resnet50() -> Path:
    path = SHARED / "fixtures" / "official_state_dict_keys_resnet50.json"
    if not path.exists():
        pytest.skip(f"{path} not found (CI provides ../shared beside the project)")
    return path
