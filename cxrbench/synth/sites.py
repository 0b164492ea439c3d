"""Per-dataset acquisition "site" styles: what makes moving between synthetic datasets a domain shift."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Site", "SITES", "apply_site"]


@dataclass(frozen=True)
class Site:
    """Detector and processing style of one site.

    ``window``: attenuation mapped to black and white; ``gamma``: tone curve exponent; ``noise``: std of the
    added quantum noise (in [0, 1] grey levels); ``edge_px``: edge softness (sharpness) in pixels;
    ``jitter``: scale of positioning variation; ``ap_fraction``: share of AP (portable) views;
    ``exposure``: std of the per-image brightness change.
    """

    name: str
    window: tuple[float, float]
    gamma: float
    noise: float
    edge_px: float
    jitter: float
    ap_fraction: float
    exposure: float


SITES: dict[str, Site] = {
    "nih": Site("nih", (0.06, 0.72), 1.10, 0.020, 1.2, 1.0, 0.40, 0.05),
    "rsna": Site("rsna", (0.02, 0.80), 0.85, 0.035, 1.8, 1.4, 0.45, 0.07),
    "siim": Site("siim", (0.10, 0.66), 1.30, 0.015, 0.9, 0.9, 0.35, 0.04),
    "covidx": Site("covidx", (0.00, 0.76), 1.00, 0.030, 1.5, 1.6, 0.60, 0.09),
    "mimic": Site("mimic", (0.08, 0.70), 1.20, 0.012, 1.0, 1.0, 0.45, 0.04),
}


def apply_site(density: np.ndarray, noise: np.ndarray, site: Site, brightness: float) -> np.ndarray:
    """Map attenuation ``(H, W)`` to a uint8 radiograph ``(H, W)``: window, tone curve, exposure, noise."""
    lo, hi = site.window
    t = np.clip((density - np.float32(lo)) * np.float32(1.0 / (hi - lo)), 0, 1)
    if site.gamma != 1.0:
        t = t ** np.float32(site.gamma)
    t = t * np.float32(255 * (1 + brightness)) + noise * np.float32(255 * site.noise)
    return np.clip(t, 0, 255).astype(np.uint8)
