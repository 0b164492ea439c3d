"""Pre-training methods (``cxrbench train NAME``): one module per method, listed explicitly below.

A method (:class:`cxrbench.methods.base.Method`) trains from a config into a run folder and returns the final
checkpoint folder; its model code lives in :mod:`medslip` or :mod:`baselines`.
"""

from __future__ import annotations

from cxrbench.methods.base import Method
from cxrbench.methods.clip import CLIP
from cxrbench.methods.medslip import MEDSLIP
from cxrbench.methods.medslip_single_stream import SINGLE_STREAM

METHODS: dict[str, Method] = {method.name: method for method in (MEDSLIP, SINGLE_STREAM, CLIP)}


def get_method(name: str) -> Method:
    try:
        return METHODS[name]
    except KeyError:
        raise KeyError(f"unknown method {name!r}; registered: {', '.join(sorted(METHODS))}") from None


__all__ = ["METHODS", "Method", "get_method"]
