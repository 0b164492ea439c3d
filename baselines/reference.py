"""Comparing a re-implementation with a fixture of the published code.

A zoo fixture (``../shared/fixtures/zoo/*.safetensors``) holds ``state_dict.<key>`` weights of the
published module, ``input.<name>`` tensors and ``expected.<name>`` outputs, with JSON-valued metadata
(``model``, ``config``, ``image_size``, ...). Each model family's ``reference.py`` rebuilds the model
through the same loader a user's downloaded file goes through and returns one :class:`Check` per
expected tensor; :func:`evaluate` turns those into verdicts. The harness's ``zoo reference`` command
prints them.

Tolerances: ``rtol`` compares ``max|actual - expected| / max|expected|`` (embeddings, logits);
``atol`` compares ``max|actual - expected|`` (scores and maps that sit near zero with random weights).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file
from torch import Tensor

#: Default tolerances of the zoo fixtures (their READMEs say which applies to which tensor).
RTOL = 1e-5
ATOL = 1e-6


@dataclass
class Check:
    """One expected tensor of a fixture and what our code computed for it."""

    name: str
    expected: Tensor
    actual: Tensor
    rtol: float | None = RTOL
    atol: float | None = None


@dataclass(frozen=True)
class Verdict:
    name: str
    shape: tuple[int, ...]
    max_abs: float
    rel: float
    tolerance: str
    ok: bool


def load_fixture(path: str | Path) -> tuple[dict[str, Tensor], dict[str, str]]:
    """All tensors of a fixture and its (string-valued) metadata."""
    with safe_open(str(path), framework="pt") as handle:
        meta = dict(handle.metadata() or {})
    return load_file(str(path)), meta


def prefixed(tensors: dict[str, Tensor], prefix: str) -> dict[str, Tensor]:
    """The tensors whose name starts with ``prefix``, with the prefix removed."""
    return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}


def evaluate(check: Check) -> Verdict:
    """Compare one check; a shape mismatch or a non-finite value fails it."""
    expected = check.expected.detach().double().cpu()
    actual = check.actual.detach().double().cpu()
    if tuple(expected.shape) != tuple(actual.shape):
        return Verdict(check.name, tuple(actual.shape), float("inf"), float("inf"),
                       f"shape {tuple(expected.shape)} expected", False)
    diff = (actual - expected).abs()
    max_abs = float(diff.max()) if diff.numel() else 0.0
    scale = float(expected.abs().max()) if expected.numel() else 0.0
    rel = max_abs / scale if scale > 0 else (0.0 if max_abs == 0 else float("inf"))
    finite = bool(torch.isfinite(actual).all()) or bool((torch.isfinite(actual) == torch.isfinite(expected)).all())
    if check.atol is not None:
        ok, tolerance = max_abs <= check.atol, f"abs <= {check.atol:g}"
    else:
        rtol = RTOL if check.rtol is None else check.rtol
        ok, tolerance = rel <= rtol, f"rel <= {rtol:g}"
    return Verdict(check.name, tuple(actual.shape), max_abs, rel, tolerance, ok and finite)


__all__ = ["ATOL", "RTOL", "Check", "Verdict", "evaluate", "load_fixture", "prefixed"]
