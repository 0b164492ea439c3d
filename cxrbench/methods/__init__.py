"""Pre-training methods, registered by name in an explicit dictionary."""

from __future__ import annotations

from cxrbench.methods.base import Method
from cxrbench.methods.medslip import MEDSLIP

METHODS: dict[str, Method] = {MEDSLIP.name: MEDSLIP}


def get_method(name: str) -> Method:
    try:
        return METHODS[name]
    except KeyError:
        raise KeyError(f"unknown method {name!r}; registered: {', '.join(sorted(METHODS))}") from None


def register_method(method: Method) -> None:
    """Add a method (baselines call this from their package)."""
    METHODS[method.name] = method


# The trainable baselines (clip, medslip-single-stream) register here, by one explicit call (see baselines/__init__.py).
from baselines import register_methods as _register_baseline_methods  # noqa: E402

_register_baseline_methods()
