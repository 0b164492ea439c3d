"""Counterfactual SynthCXR sets: the same patient rendered with one finding moved, removed or changed.

For each of ``n`` *base cases* one patient (anatomy, acquisition, quantum-noise crop, exposure) is drawn once and
rendered as five *variants* that differ only in one focal finding:

- ``base``: finding ``c`` at site ``(side, zone)`` (e.g. consolidation in the right lower lung zone);
- ``mirror``: the same finding at the mirrored site (the other lung, same zone);
- ``zone``: the same finding in another zone of the same lung;
- ``absent``: no finding;
- ``swap``: another focal class at the base site.

The finding is drawn from its own generator seeded per base case, so its placement *within* the zone (the
fractions of the zone's height and width), its size and its texture are the same in every variant: only the
site (or the class) changes. Everything outside the finding is bit-identical, so two variants differ only where
one of their findings changed the attenuation (``Render.support``: every pixel whose density the finding
changed; ``Render.mask`` is the generator's lesion mask, the one the corpora report, inside the support).

Each base case also carries boolean masks of the anatomical regions the generator knows
(:data:`REGIONS`: lungs by side and zone, heart, pleura, apices, bases, hemidiaphragms), each named with
its MeDSLIP anatomy query (:data:`REGION_QUERY`).

The set is deterministic in ``(n, size, seed, site)`` and :data:`COUNTERFACTUAL_VERSION`; :func:`case_listing`
gives the text file that fingerprints it (one line per base case), and :func:`content_sha256` hashes every
rendered pixel and mask.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .anatomy import F32, Geometry, base_density, compute_geometry, sample_patient
from .findings import draw_finding
from .render import _noise
from .sites import SITES, apply_site

__all__ = ["COUNTERFACTUAL_VERSION", "FOCAL_CLASSES", "SIDES", "ZONES", "VARIANTS", "REGIONS", "REGION_QUERY",
           "Render", "BaseCase", "CounterfactualSet", "make_counterfactual_set", "region_masks", "site_query",
           "case_listing", "write_case_listing"]

#: Bump when the renders, masks or the case listing change.
COUNTERFACTUAL_VERSION = "1"
#: Findings that can sit in any lung zone of either side (so they can be moved and swapped at one site).
FOCAL_CLASSES: tuple[str, ...] = ("consolidation", "infiltration", "mass", "nodule")
SIDES: tuple[str, ...] = ("right", "left")  # patient side: right = image left
ZONES: tuple[str, ...] = ("upper", "mid", "lower")
VARIANTS: tuple[str, ...] = ("base", "mirror", "zone", "absent", "swap")
#: Anatomical regions (mask names) in a fixed order.
REGIONS: tuple[str, ...] = tuple(f"{s}_{z}_lung" for s in SIDES for z in ZONES) + (
    "right_lung", "left_lung", "heart", "right_pleura", "left_pleura", "lung_apices", "lung_bases",
    "right_diaphragm", "left_diaphragm")
#: The MeDSLIP anatomy query (``medslip.vocab.ANATOMIES``) that names each region.
REGION_QUERY: dict[str, str] = {
    **{f"{s}_{z}_lung": f"{s}_{z}_lung" for s in SIDES for z in ZONES},
    "right_lung": "right_lung_unspec", "left_lung": "left_lung_unspec", "heart": "heart_size",
    "right_pleura": "right_pleural", "left_pleura": "left_pleural", "lung_apices": "lung_apices",
    "lung_bases": "lung_bases", "right_diaphragm": "right_diaphragm", "left_diaphragm": "left_diaphragm",
}
#: Zone boundaries as fractions of the lung height (apex 0 -> dome 1), between the generator's placement windows
#: (upper 0.14-0.36, mid 0.38-0.60, lower 0.64-0.86 in :data:`cxrbench.synth.findings.LOCATIONS`).
ZONE_EDGES = (0.37, 0.62)


def site_query(side: str, zone: str) -> str:
    """The anatomy query (and location key) of a lung zone, e.g. ``right_lower_lung``."""
    return f"{side}_{zone}_lung"


@dataclass
class Render:
    """One variant: ``image`` ``(H, W)`` uint8; the focal finding (None for ``absent``) with its lesion mask
    and its support (pixels whose density it changed), both ``(H, W)`` bool."""

    variant: str
    image: np.ndarray
    finding: str | None
    side: str | None
    zone: str | None
    mask: np.ndarray
    support: np.ndarray


@dataclass
class BaseCase:
    """One patient and its variants (in :data:`VARIANTS` order) plus the region masks ``{name: (H, W) bool}``."""

    case_id: str
    finding: str
    side: str
    zone: str
    moved_zone: str
    swap_class: str
    severity: float
    renders: dict[str, Render]
    regions: dict[str, np.ndarray]


@dataclass
class CounterfactualSet:
    """``n`` base cases rendered at ``size`` px from ``seed`` with the acquisition style of ``site``."""

    cases: list[BaseCase]
    size: int
    seed: int
    site: str
    version: str = COUNTERFACTUAL_VERSION
    params: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.cases)


def _band(g: Geometry, side: int, lo: float, hi: float) -> np.ndarray:
    """Rows between fractions ``lo`` and ``hi`` of the lung height (apex 0 -> dome 1) on ``side``."""
    p = g.patient
    top = p.lung_top
    span = p.dome(side) + 0.02 - top
    return (g.y >= F32(top + lo * span)) & (g.y < F32(top + hi * span))


def region_masks(g: Geometry) -> dict[str, np.ndarray]:
    """Boolean ``(H, W)`` masks of :data:`REGIONS` from a patient's geometry."""
    lung = g.lung_mask
    out: dict[str, np.ndarray] = {}
    edges = (-1.0, ZONE_EDGES[0], ZONE_EDGES[1], 2.0)
    for si, s in enumerate(SIDES):
        half = g.side_mask(si)
        for zi, z in enumerate(ZONES):
            out[f"{s}_{z}_lung"] = lung & half & _band(g, si, edges[zi], edges[zi + 1])
    out["right_lung"] = lung & g.side_mask(0)
    out["left_lung"] = lung & g.side_mask(1)
    out["heart"] = (g.heart_depth > 0) & (g.dome_depth > F32(-0.02))
    for si, s in enumerate(SIDES):
        # the pleural band along the lateral and apical chest wall, down to the costophrenic angle
        out[f"{s}_pleura"] = (g.side_mask(si) & (g.wall_depth > F32(-0.012)) & (g.wall_depth < F32(0.03))
                              & (g.dome_depth > F32(-0.03)) & (g.medial_depth > 0))
    out["lung_apices"] = lung & (_band(g, 0, -1.0, 0.2) & g.side_mask(0) | _band(g, 1, -1.0, 0.2) & g.side_mask(1))
    out["lung_bases"] = lung & (_band(g, 0, 0.68, 2.0) & g.side_mask(0) | _band(g, 1, 0.68, 2.0) & g.side_mask(1))
    for si, s in enumerate(SIDES):
        # the hemidiaphragm: a band across the dome under the lung, from the cardiac border to the wall
        out[f"{s}_diaphragm"] = (g.side_mask(si) & (np.abs(g.dome_depth) < F32(0.025)) & (g.wall_depth > F32(-0.03))
                                 & (g.medial_depth > F32(-0.02)) & (g.heart_depth < 0))
    return {k: out[k] for k in REGIONS}


def _render(g: Geometry, noise: np.ndarray, brightness: float, site, finding: str | None, side: str | None,
            zone: str | None, severity: float, finding_seed: int, variant: str) -> Render:
    empty = np.zeros((g.height, g.width), bool)
    density = base_density(g, 1.0)
    mask, support = empty, empty
    if finding is not None:
        delta, lesions, vessel = draw_finding(g, np.random.default_rng(finding_seed), finding, severity,
                                              [site_query(side, zone)])
        if vessel is not None:  # not for the focal classes; kept general
            density = base_density(g, vessel)
            support = support | (vessel != 1)
        if delta is not None:
            density = density + delta
            support = support | (delta != 0)
        mask = lesions[0].mask.copy()
        for les in lesions[1:]:
            mask |= les.mask
    image = apply_site(density, noise, site, brightness)
    return Render(variant, image, finding, side, zone, mask, support | mask)


def make_counterfactual_set(n: int = 32, size: int = 256, seed: int = 0, site: str = "mimic",
                            classes: tuple[str, ...] = FOCAL_CLASSES) -> CounterfactualSet:
    """``n`` base cases with their five variants and region masks (deterministic in the arguments).

    Base cases cycle through the classes and the six lung sites so that every class and every site is
    represented evenly; the other choices (moved zone, swap class, severity, patient) are seeded per case.
    """
    if n < 1 or size < 64:
        raise ValueError(f"need n >= 1 and size >= 64 (got n={n}, size={size})")
    if len(classes) < 2 or any(c not in FOCAL_CLASSES for c in classes):
        raise ValueError(f"classes must be two or more of {FOCAL_CLASSES}, got {classes}")
    style = SITES[site]
    sites = [(s, z) for s in SIDES for z in ZONES]
    cases: list[BaseCase] = []
    for i in range(n):
        seq = np.random.SeedSequence([int(seed), i, 0xCF])
        s_choice, s_patient, s_noise, s_finding = seq.spawn(4)
        choice = np.random.default_rng(s_choice)
        finding = classes[i % len(classes)]
        side, zone = sites[(i // len(classes)) % len(sites)]
        if (i // (len(classes) * len(sites))) % 2 == 1:  # second pass: mirror the site pattern
            side = SIDES[1 - SIDES.index(side)]
        moved_zone = str(choice.choice([z for z in ZONES if z != zone]))
        swap = str(choice.choice([c for c in classes if c != finding]))
        severity = float(choice.uniform(0.35, 0.9))
        finding_seed = int(np.random.default_rng(s_finding).integers(0, 2**63 - 1))
        patient = sample_patient(np.random.default_rng(s_patient), style.ap_fraction, style.jitter)
        g = compute_geometry(patient, size, size, style.edge_px)
        nrng = np.random.default_rng(s_noise)
        noise = _noise(g, nrng)
        brightness = float(nrng.normal(0, style.exposure))
        other = SIDES[1 - SIDES.index(side)]
        spec = {"base": (finding, side, zone), "mirror": (finding, other, zone), "zone": (finding, side, moved_zone),
                "absent": (None, None, None), "swap": (swap, side, zone)}
        renders = {v: _render(g, noise, brightness, style, *spec[v], severity, finding_seed, v) for v in VARIANTS}
        cases.append(BaseCase(f"cf{COUNTERFACTUAL_VERSION}-s{seed}-{i:05d}", finding, side, zone, moved_zone, swap,
                              severity, renders, region_masks(g)))
    params = {"n": int(n), "size": int(size), "seed": int(seed), "site": site, "classes": list(classes),
              "version": COUNTERFACTUAL_VERSION}
    return CounterfactualSet(cases, int(size), int(seed), site, COUNTERFACTUAL_VERSION, params)


def case_listing(cset: CounterfactualSet) -> str:
    """The set's case file: a header with the parameters, then one tab-separated line per base case
    (id, class, side, zone, moved zone, swap class, severity, sha256 of its renders and masks)."""
    p = cset.params
    lines = [f"# SynthCXR counterfactual set v{cset.version}: n={p['n']} size={p['size']} seed={p['seed']} "
             f"site={p['site']} classes={','.join(p['classes'])}",
             "# case_id\tclass\tside\tzone\tmoved_zone\tswap_class\tseverity\tsha256"]
    for c in cset.cases:
        lines.append("\t".join([c.case_id, c.finding, c.side, c.zone, c.moved_zone, c.swap_class,
                                f"{c.severity:.6f}", _case_sha(c)]))
    return "\n".join(lines) + "\n"


def _case_sha(case: BaseCase) -> str:
    digest = hashlib.sha256()
    for v in VARIANTS:
        r = case.renders[v]
        digest.update(v.encode() + b"\0" + r.image.tobytes() + np.packbits(r.mask).tobytes()
                      + np.packbits(r.support).tobytes())
    for name in REGIONS:
        digest.update(name.encode() + b"\0" + np.packbits(case.regions[name]).tobytes())
    return digest.hexdigest()


def write_case_listing(cset: CounterfactualSet, path: str | Path) -> tuple[Path, str]:
    """Write :func:`case_listing` atomically; returns the path and the file's sha256."""
    from medslip.atomic import write_text_atomic

    text = case_listing(cset)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, text)
    return path, hashlib.sha256(text.encode()).hexdigest()
