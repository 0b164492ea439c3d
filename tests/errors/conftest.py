"""Fixtures for the catalogue of bad inputs: small datasets laid out like the real ones, a tiny checkpoint,
and a helper that runs the command line as a user would (one process per test, no tracebacks)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

ROOT = Path(__file__).resolve().parents[2]
WIDE = {"COLUMNS": "250", "TERMINAL_WIDTH": "250"}


@dataclass
class Outcome:
    code: int
    output: str  # stdout and stderr, as the user sees them
    stderr: str

    @property
    def error_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.startswith("error:")]


def cli(*args: str | Path) -> Outcome:
    """Run ``cxrbench ARGS`` in this process (typer's runner), like a user at a terminal."""
    from cxrbench.cli import app

    result = CliRunner().invoke(app, [str(a) for a in args], env=WIDE)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"the command raised instead of answering: {result.exception!r}\n{result.output}")
    return Outcome(result.exit_code, result.output, result.stderr)


def cli_process(*args: str | Path, prelude: str = "", env: dict[str, str] | None = None,
                timeout: float = 600) -> subprocess.CompletedProcess:
    """Run ``cxrbench ARGS`` in a fresh Python process; ``prelude`` runs first (e.g. to simulate a kill)."""
    code = f"{prelude}\nfrom cxrbench.cli import app\napp({[str(a) for a in args]!r})\n"
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **WIDE, **(env or {})}
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=full_env, capture_output=True, text=True,
                          timeout=timeout)


def assert_one_line(out: Outcome, code: int, *fragments: str) -> None:
    """Exit ``code``, exactly one ``error:`` line holding every fragment, and no traceback."""
    assert out.code == code, (out.code, out.output)
    assert "Traceback" not in out.output, out.output
    lines = out.error_lines
    assert len(lines) == 1, out.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


def temp_folders(root: Path) -> list[Path]:
    """Temporary build / write leftovers below ``root`` (``.*.tmp``)."""
    return sorted(p for p in root.rglob(".*.tmp")) if root.exists() else []


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """A randomly initialised tiny MeDSLIP (ResNet-18, 64 px) in our checkpoint format."""
    from medslip import MeDSLIP, MeDSLIPConfig
    from medslip.books import anatomy_texts, encode_books, pathology_texts
    from medslip.checkpoint import save_checkpoint
    from medslip.text import tiny_text_encoder

    torch.manual_seed(0)
    encoder = tiny_text_encoder(width=32)
    book_p, book_a = encode_books(encoder)
    model = MeDSLIP(MeDSLIPConfig(backbone="resnet18", num_layers=1, d_model=32, num_heads=2, dim_feedforward=64,
                                  text_width=32), book_p, book_a)
    path = tmp_path_factory.mktemp("ckpt") / "tiny"
    save_checkpoint(model, path, pathology_texts(), anatomy_texts(), text_encoder=encoder.identity,
                    extra={"config": {"data": {"image_size": 64}}})
    return path


@pytest.fixture(scope="session")
def synth_roots(tmp_path_factory) -> dict[str, Path]:
    """Small SynthCXR datasets (written once per session; copy before corrupting)."""
    from cxrbench.synth import generate

    base = tmp_path_factory.mktemp("errors-synth")
    sizes = {"covidx-cxr4": 60}
    return {name: generate(name, base / name, n=n, size=64, seed=5, progress=False) for name, n in sizes.items()}


@pytest.fixture
def copy_of(synth_roots, tmp_path):
    """``copy_of(dataset)``: a private copy of a small dataset, to corrupt."""

    def make(dataset: str) -> Path:
        dst = tmp_path / dataset
        shutil.copytree(synth_roots[dataset], dst)
        return dst

    return make
