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
