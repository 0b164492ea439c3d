"""One synthetic radiograph: patient + findings -> uint8 image and per-finding masks."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .anatomy import Geometry, Patient, base_density, compute_geometry, sample_patient
from .findings import CATALOGUE, PROFILES, Finding, Profile, draw_finding, pre_anatomy, sample_case
from .sites import SITES, Site, apply_site

__all__ = ["Case", "render_case", "choose_locations"]


@dataclass
class Case:
    """A rendered image: ``image`` is ``(H, W)`` uint8; each finding carries its lesion masks ``(H, W)`` bool."""

    image: np.ndarray
    patient: Patient
    findings: list[Finding]
    site: str

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.findings]

    def finding(self, name: str) -> Finding | None:
        for f in self.findings:
            if f.name == name:
                return f
        return None


def choose_locations(rng: np.random.Generator, name: str) -> list[str]:
    """Location keys of the lesions of one finding (several for multifocal pneumonia or pneumothorax)."""
    spec = CATALOGUE[name]
    options = list(spec.locations)
    if name == "pneumonia":
        k = int(rng.choice([1, 1, 1, 2, 2, 3]))
        picks = list(rng.choice(len(options), size=len(options), replace=False))
        chosen: list[str] = []
        for i in picks:  # at most one location per lung zone family, no duplicates
            key = options[int(i)]
            if all(_overlap_family(key) != _overlap_family(c) for c in chosen):
                chosen.append(key)
            if len(chosen) == k:
                break
        return chosen
    if name == "pneumothorax" and rng.random() < 0.15:
        return ["right_pleural", "left_pleural"]
    if name == "infiltration" and rng.random() < 0.25:
        a, b = rng.choice(len(options), size=2, replace=False)
        keys = [options[int(a)], options[int(b)]]
        if _overlap_family(keys[0]) != _overlap_family(keys[1]):
            return keys
    return [options[int(rng.integers(0, len(options)))]]


def _overlap_family(key: str) -> str:
    """Locations that overlap on the image share a family (e.g. right lower lung and right lower lobe)."""
    side = "right" if "right" in key else "left" if "left" in key else "both"
    band = "upper" if ("upper" in key or "apical" in key) else "mid" if ("mid" in key or "middle" in key) else "low"
    return f"{side}-{band}"


def render_case(rng: np.random.Generator, site: Site | str = "nih", profile: Profile | str | None = None,
                height: int = 256, width: int | None = None, names: list[str] | None = None,
                patient_seed: int | None = None) -> Case:
    """Draw a patient and findings from ``rng`` and render them as a ``(height, width)`` radiograph.

    ``names`` forces the finding list (otherwise drawn from ``profile``, which defaults to the site's profile).
    ``patient_seed`` draws the anatomy from its own seed, so follow-up images of one patient share it.
    """
    site = SITES[site] if isinstance(site, str) else site
    width = height if width is None else width
    prof = PROFILES.get(site.name, PROFILES["nih"]) if profile is None else (
        PROFILES[profile] if isinstance(profile, str) else profile)
    if names is None:
        names = sample_case(rng, prof)
    prng = rng if patient_seed is None else np.random.default_rng(patient_seed)
    patient = sample_patient(prng, site.ap_fraction, site.jitter)
    sev = {n: float(rng.uniform(0.0, 1.0)) for n in names}
    patient = pre_anatomy(patient, names, sev)
    g = compute_geometry(patient, height, width, site.edge_px)
    findings: list[Finding] = []
    extra = np.zeros((height, width), np.float32)
    vessel: np.ndarray | float = 1.0
    device_mask = np.zeros((height, width), bool)
    for name in names:
        locs = choose_locations(rng, name)
        delta, lesions, vs = draw_finding(g, rng, name, sev[name], locs)
        if delta is not None:
            extra += delta
        if vs is not None:
            vessel = vs if isinstance(vessel, float) else vessel * vs
        if CATALOGUE[name].device:
            device_mask |= lesions[0].mask
        lesions = [les for les in lesions if les.mask.any()]
        if lesions:
            findings.append(Finding(name, sev[name], lesions))
    density = base_density(g, vessel) + extra
    if device_mask.any():
        density = np.where(device_mask, np.maximum(density, np.float32(0.62)), density)
    noise = _noise(g, rng)
    image = apply_site(density, noise, site, float(rng.normal(0, site.exposure)))
    return Case(image=image, patient=patient, findings=findings, site=site.name)


def _noise(g: Geometry, rng: np.random.Generator) -> np.ndarray:
    """Quantum noise ``(H, W)``: a randomly offset, randomly flipped crop of the fixed fine texture."""
    from .anatomy import texture_bank

    fine = texture_bank(g.height, g.width)[1]
    oy = int(rng.integers(0, fine.shape[0] - g.height))
    ox = int(rng.integers(0, fine.shape[1] - g.width))
    crop = fine[oy:oy + g.height, ox:ox + g.width]
    return crop[::-1] if rng.random() < 0.5 else crop
