"""Zoo test helpers: sockets blocked, the CLI runner, the shared fixtures folder."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from tests.conftest import SHARED

ZOO_FIXTURES = SHARED / "fixtures" / "zoo"
WIDE = {"COLUMNS": "200", "TERMINAL_WIDTH": "200"}


@pytest.fixture
def no_network(monkeypatch):
    """Fail (and record) any attempt to resolve a host name or open a connection."""
    attempts: list[tuple] = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise OSError("network access in a test")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setenv("CXRBENCH_ALLOW_DOWNLOAD", "0")
    return attempts


def zoo_fixture(name: str) -> Path:
    path = ZOO_FIXTURES / name
    if not path.exists():
        pytest.skip(f"zoo fixture not found at {path} (CI provides ../shared beside the project)")
    return path


@pytest.fixture(scope="session")
def nih_root(tmp_path_factory, isolated_cache) -> Path:
    """A small SynthCXR NIH ChestX-ray14 corpus (shared by the zoo end-to-end tests)."""
    from cxrbench.synth import generate

    return generate("nih-cxr14", tmp_path_factory.mktemp("zoo-synth") / "nih", n=240, size=96, seed=5, progress=False)


def run_options(tmp_path: Path, root: Path, **kw):
    """Fast evaluation options: few bootstrap draws, one epoch, no progress bars."""
    from cxrbench.run import RunOptions

    base = dict(data_root=root, out=tmp_path / "results", n_boot=20, epochs=1, batch_size=8, progress=False)
    base.update(kw)
    return RunOptions(**base)
