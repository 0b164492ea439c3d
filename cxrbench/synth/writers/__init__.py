"""One writer per dataset format; each has ``write(root, n, size, seed, tick) -> summary dict``."""

from __future__ import annotations

from . import covidx, medslip, mimic, nih, rsna, siim

__all__ = ["covidx", "medslip", "mimic", "nih", "rsna", "siim"]
