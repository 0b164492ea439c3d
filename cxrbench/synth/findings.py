"""Findings: catalogue, locations, case sampling (prevalence and co-occurrence) and drawing with pixel masks.

A *finding* (``Finding``) is one pathology or device in one image: a name from :data:`CATALOGUE`, a severity in
``[0, 1]``, and one or more *lesions*, each at one location of :data:`LOCATIONS` with its own boolean pixel mask.
Every location names the MeDSLIP anatomies (``medslip.vocab.ANATOMIES``) that the report will use for it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw

from medslip.vocab import ANATOMY_INDEX

from .anatomy import F32, Geometry, Patient, patient_to_pixel, with_changes

__all__ = ["Location", "LOCATIONS", "FindingSpec", "CATALOGUE", "Lesion", "Finding", "PROFILES",
           "sample_case", "pre_anatomy", "draw_finding", "DEVICES", "NIH_LABELS"]


@dataclass(frozen=True)
class Location:
    """Where a lesion sits: anatomies (MeDSLIP vocabulary), side (0 patient right, 1 left, 2 both) and the
    placement window as fractions of the lung height (apex 0 -> dome 1) and width (medial 0 -> lateral 1)."""

    key: str
    anatomies: tuple[str, ...]
    side: int
    y_frac: tuple[float, float] = (0.0, 1.0)
    x_frac: tuple[float, float] = (0.15, 0.85)


def _lung_locations() -> dict[str, Location]:
    locs: dict[str, Location] = {}
    for side, s in ((0, "right"), (1, "left")):
        locs[f"{s}_upper_lung"] = Location(f"{s}_upper_lung", (f"{s}_upper_lung",), side, (0.14, 0.36))
        locs[f"{s}_mid_lung"] = Location(f"{s}_mid_lung", (f"{s}_mid_lung",), side, (0.38, 0.60))
        locs[f"{s}_lower_lung"] = Location(f"{s}_lower_lung", (f"{s}_lower_lung",), side, (0.64, 0.86))
        locs[f"{s}_apical_lung"] = Location(f"{s}_apical_lung", (f"{s}_apical_lung",), side, (0.05, 0.14),
                                            (0.25, 0.7))
        locs[f"upper_{s}_lobe"] = Location(f"upper_{s}_lobe", (f"upper_{s}_lobe",), side, (0.12, 0.42))
        locs[f"lower_{s}_lobe"] = Location(f"lower_{s}_lobe", (f"lower_{s}_lobe",), side, (0.66, 0.88))
        locs[f"{s}_pleural"] = Location(f"{s}_pleural", (f"{s}_pleural",), side)
        locs[f"{s}_costophrenic"] = Location(f"{s}_costophrenic", (f"{s}_costophrenic",), side, (0.8, 0.95),
                                             (0.7, 0.95))
    locs["middle_right_lobe"] = Location("middle_right_lobe", ("middle_right_lobe",), 0, (0.56, 0.76), (0.15, 0.5))
    locs["lung_bases"] = Location("lung_bases", ("lung_bases",), 2, (0.68, 0.88))
    locs["lung_apices"] = Location("lung_apices", ("lung_apices",), 2, (0.04, 0.2))
    locs["bilateral_pleural"] = Location("bilateral_pleural", ("left_pleural", "right_pleural"), 2)
    locs["bilateral_lower_lung"] = Location("bilateral_lower_lung", ("left_lower_lung", "right_lower_lung"), 2,
                                            (0.6, 0.86), (0.62, 0.9))
    for key, anat in (("heart_size", "heart_size"), ("pulmonary", "pulmonary"), ("interstitium", "interstitium"),
                      ("retrocardiac", "retrocardiac"), ("trachea", "trachea"), ("svc", "svc"),
                      ("stomach", "stomach"), ("other", "other")):
        locs[key] = Location(key, (anat,), 2)
    locs["pacemaker_leads"] = Location("pacemaker_leads", ("right_atrium", "right_ventricle"), 2)
    for loc in locs.values():
        for a in loc.anatomies:
            assert a in ANATOMY_INDEX, a
    return locs


LOCATIONS: dict[str, Location] = _lung_locations()

_ZONES = ("upper_lung", "mid_lung", "lower_lung")
_LOBES_R = ("upper_right_lobe", "middle_right_lobe", "lower_right_lobe")
_LOBES_L = ("upper_left_lobe", "lower_left_lobe")
_ANY_LUNG = tuple(f"{s}_{z}" for s in ("right", "left") for z in _ZONES) + _LOBES_R + _LOBES_L


@dataclass(frozen=True)
class FindingSpec:
    """A kind of finding: its NIH label (or None), NIH-like base rate, candidate locations and severity words."""

    name: str
    nih: str | None
    rate: float
    locations: tuple[str, ...]
    severity_words: tuple[str, str, str]
    device: bool = False


_SIDED = ("right", "left")
CATALOGUE: dict[str, FindingSpec] = {s.name: s for s in (
    FindingSpec("atelectasis", "Atelectasis", 0.103,
                ("lung_bases", "right_lower_lung", "left_lower_lung", "lower_right_lobe", "lower_left_lobe"),
                ("minimal", "mild", "moderate")),
    FindingSpec("cardiomegaly", "Cardiomegaly", 0.025, ("heart_size",), ("mild", "moderate", "severe")),
    FindingSpec("consolidation", "Consolidation", 0.042, _ANY_LUNG, ("small", "moderate", "large")),
    FindingSpec("edema", "Edema", 0.021, ("pulmonary", "interstitium"), ("mild", "moderate", "severe")),
    FindingSpec("effusion", "Effusion", 0.119, ("right_pleural", "left_pleural", "bilateral_pleural"),
                ("small", "moderate", "large")),
    FindingSpec("emphysema", "Emphysema", 0.022, ("pulmonary", "lung_apices"), ("mild", "moderate", "severe")),
    FindingSpec("fibrosis", "Fibrosis", 0.015, ("lung_bases", "lung_apices", "right_lower_lung", "left_lower_lung"),
                ("mild", "moderate", "extensive")),
    FindingSpec("hernia", "Hernia", 0.002, ("retrocardiac",), ("small", "moderate", "large")),
    FindingSpec("infiltration", "Infiltration", 0.177, _ANY_LUNG, ("subtle", "patchy", "extensive")),
    FindingSpec("mass", "Mass", 0.052, _ANY_LUNG, ("", "", "")),
    FindingSpec("nodule", "Nodule", 0.056, _ANY_LUNG, ("", "", "")),
    FindingSpec("pleural_thickening", "Pleural_Thickening", 0.030, ("right_pleural", "left_pleural"),
                ("mild", "moderate", "marked")),
    FindingSpec("pneumonia", "Pneumonia", 0.013, _ANY_LUNG, ("small", "moderate", "large")),
    FindingSpec("pneumothorax", "Pneumothorax", 0.047, ("right_pleural", "left_pleural", "right_apical_lung",
                                                         "left_apical_lung"), ("small", "moderate", "large")),
    FindingSpec("covid19", None, 0.0, ("bilateral_lower_lung", "lung_bases"), ("mild", "moderate", "severe")),
    FindingSpec("et_tube", None, 0.0, ("trachea",), ("", "", ""), device=True),
    FindingSpec("ng_tube", None, 0.0, ("stomach",), ("", "", ""), device=True),
    FindingSpec("central_line", None, 0.0, ("svc",), ("", "", ""), device=True),
    FindingSpec("pacemaker", None, 0.0, ("other",), ("", "", ""), device=True),
)}

#: NIH ChestX-ray14 labels in Data_Entry order of the published zero-shot table.
NIH_LABELS: tuple[str, ...] = tuple(s.nih for s in CATALOGUE.values() if s.nih)
DEVICES: tuple[str, ...] = tuple(n for n, s in CATALOGUE.items() if s.device)

#: Conditional co-occurrence: (if present, then add, with probability) -- e.g. failing hearts bring effusions.
_COOCCUR: tuple[tuple[str, str, float], ...] = (
    ("cardiomegaly", "effusion", 0.35), ("cardiomegaly", "edema", 0.25), ("effusion", "atelectasis", 0.30),
    ("pneumonia", "consolidation", 0.25), ("pneumonia", "infiltration", 0.30), ("mass", "nodule", 0.15),
    ("emphysema", "fibrosis", 0.10), ("edema", "effusion", 0.40),
)

_PATHOLOGIES = tuple(n for n, s in CATALOGUE.items() if s.nih)


@dataclass(frozen=True)
class Profile:
    """How a dataset's cases are drawn: per-finding rates, a forced target with its rate, device rates."""

    rates: dict[str, float]
    target: str | None = None
    target_rate: float = 0.0
    device_rates: dict[str, float] = field(default_factory=dict)
    excluded_with_target: tuple[str, ...] = ()


def _floored(scale: float = 1.0, floor: float = 0.05, drop: tuple[str, ...] = ()) -> dict[str, float]:
    return {n: max(CATALOGUE[n].rate, floor) * scale for n in _PATHOLOGIES if n not in drop}


_DEVICE_RATES = {"et_tube": 0.08, "ng_tube": 0.06, "central_line": 0.12, "pacemaker": 0.05}
PROFILES: dict[str, Profile] = {
    "nih": Profile(_floored(), device_rates={k: v * 0.5 for k, v in _DEVICE_RATES.items()}),
    "rsna": Profile(_floored(0.6, drop=("pneumonia", "consolidation", "infiltration")), "pneumonia", 0.30,
                    {k: v * 0.5 for k, v in _DEVICE_RATES.items()}),
    "siim": Profile(_floored(0.5, drop=("pneumothorax",)), "pneumothorax", 0.28,
                    {k: v * 0.3 for k, v in _DEVICE_RATES.items()}),
    "covidx": Profile(_floored(0.3, drop=("edema",)), "covid19", 0.5, {k: v * 0.4 for k, v in _DEVICE_RATES.items()}),
    "mimic": Profile(_floored(), device_rates=_DEVICE_RATES),
}


def sample_case(rng: np.random.Generator, profile: Profile) -> list[str]:
    """Draw the finding names of one image (pathologies first, then devices), following ``profile``."""
    names: list[str] = []
    has_target = profile.target is not None and rng.random() < profile.target_rate
    if has_target:
        names.append(profile.target)  # type: ignore[arg-type]
    for name, rate in profile.rates.items():
        if rng.random() < rate:
            names.append(name)
    for a, b, p in _COOCCUR:
        if a in names and b not in names and b in profile.rates and rng.random() < p:
            names.append(b)
    for name, rate in profile.device_rates.items():
        if rng.random() < rate:
            names.append(name)
    order = list(CATALOGUE)
    return sorted(set(names), key=order.index)


def pre_anatomy(patient: Patient, names: list[str], sev: dict[str, float]) -> Patient:
    """Findings that change the anatomy itself (cardiomegaly enlarges the heart; emphysema flattens the domes)."""
    if "cardiomegaly" in names:
        k = 1.22 + 0.28 * sev["cardiomegaly"]
        patient = with_changes(patient, heart_rx=patient.heart_rx * k, heart_ry=patient.heart_ry * 1.08,
                               heart_x=patient.heart_x + 0.03)
    if "emphysema" in names:
        e = sev["emphysema"]
        patient = with_changes(patient, dome_r=patient.dome_r + 0.05 + 0.05 * e,
                               dome_l=patient.dome_l + 0.05 + 0.05 * e, dome_k=patient.dome_k * 0.5,
                               lung_ay=patient.lung_ay + 0.04, lung_density=patient.lung_density + 0.02 + 0.03 * e)
    return patient


@dataclass
class Lesion:
    """One connected lesion: its location key and its ``(H, W)`` boolean mask."""

    location: str
    mask: np.ndarray

    def box(self) -> tuple[int, int, int, int] | None:
        """``(x, y, w, h)`` of the mask's bounding box in pixels, or None if the mask is empty."""
        rows = np.flatnonzero(self.mask.any(axis=1))
        if rows.size == 0:
            return None
        cols = np.flatnonzero(self.mask.any(axis=0))
        return int(cols[0]), int(rows[0]), int(cols[-1] - cols[0] + 1), int(rows[-1] - rows[0] + 1)


@dataclass
class Finding:
    """One finding in one image: name, severity in [0, 1], its severity word and its lesions."""

    name: str
    severity: float
    lesions: list[Lesion]

    @property
    def spec(self) -> FindingSpec:
        return CATALOGUE[self.name]

    @property
    def severity_word(self) -> str:
        return self.spec.severity_words[min(2, int(self.severity * 3))]

    @property
    def anatomies(self) -> tuple[str, ...]:
        """Union of the anatomies of all lesions, in first-seen order."""
        out: list[str] = []
        for les in self.lesions:
            for a in LOCATIONS[les.location].anatomies:
                if a not in out:
                    out.append(a)
        return tuple(out)

    @property
    def mask(self) -> np.ndarray:
        m = self.lesions[0].mask.copy()
        for les in self.lesions[1:]:
            m |= les.mask
        return m


# ----------------------------------------------------------------------------------------------------------
# Drawing. Each function returns (delta density (H, W) float32 or None, lesion masks, vessel scale or None).


def _place(g: Geometry, rng: np.random.Generator, loc: Location, side: int | None = None) -> tuple[float, float]:
    """A random lesion centre inside the lung at ``loc`` (patient coordinates)."""
    p = g.patient
    side = loc.side if side is None else side
    if side == 2:
        side = int(rng.integers(0, 2))
    sign = 1.0 if side == 1 else -1.0
    top = p.lung_top
    for _ in range(30):
        fy = rng.uniform(*loc.y_frac)
        y = top + fy * (p.dome(side) + 0.02 - top)
        lat = p.lateral_xs(y)
        med = p.medial_xs(y, side) + 0.03
        fx = rng.uniform(*loc.x_frac)
        xs = med + fx * max(0.0, lat - med)
        x = sign * xs
        if _depth_at(g, x, y) > 0.02:
            return x, y
    return x, y


def _depth_at(g: Geometry, x: float, y: float) -> float:
    """Lung depth field at patient point (x, y) (nearest pixel; -1 outside the image)."""
    col, row = patient_to_pixel(g, np.array([[x, y]]))[0]
    c, r = int(round(col)), int(round(row))
    if 0 <= r < g.height and 0 <= c < g.width:
        return float(g.lung_depth[r, c])
    return -1.0


def _bump(g: Geometry, cx: float, cy: float, rx: float, ry: float, irregular: float = 0.0) -> np.ndarray:
    """A smooth bump ``(H, W)`` in [0, ~1.4], 1 at the centre, 0 outside the ellipse, optionally irregular."""
    qx = (g.x - F32(cx)) * F32(1 / rx)
    qy = (g.y - F32(cy)) * F32(1 / ry)
    b = np.clip(F32(1) - (qx * qx + qy * qy), 0, 1)
    if irregular:
        b = b * (F32(1) + F32(irregular) * g.texture)
    return b


def _opacity(g: Geometry, rng, sev: float, locs: list[str], size: float, irregular: float,
             strength: float) -> tuple[np.ndarray, list[Lesion]]:
    delta = np.zeros((g.height, g.width), np.float32)
    lesions: list[Lesion] = []
    lung = g.lung_mask
    for key in locs:
        loc = LOCATIONS[key]
        sides = (0, 1) if loc.side == 2 else (loc.side,)
        for side in sides:
            cx, cy = _place(g, rng, loc, side)
            r = size * (0.7 + 0.6 * sev)
            b = _bump(g, cx, cy, r * rng.uniform(0.8, 1.2), r * rng.uniform(0.9, 1.4), irregular)
            inside = b * g.lung
            delta += inside * F32(strength * (0.6 + 0.6 * sev))
            lesions.append(Lesion(key, (inside > 0.3) & lung))
    return delta, lesions


def draw_finding(g: Geometry, rng: np.random.Generator, name: str, sev: float,
                 locs: list[str]) -> tuple[np.ndarray | None, list[Lesion], np.ndarray | None]:
    """Draw finding ``name`` of severity ``sev`` at location keys ``locs`` on geometry ``g``."""
    p = g.patient
    H, W = g.height, g.width
    if name in ("consolidation", "pneumonia"):
        d, les = _opacity(g, rng, sev, locs, 0.11, 0.35 if name == "consolidation" else 0.6, 0.24)
        return d, les, None
    if name == "covid19":
        d, les = _opacity(g, rng, sev, locs, 0.12, 0.7, 0.14)
        return d, les, None
    if name == "infiltration":
        delta = np.zeros((H, W), np.float32)
        lesions = []
        for key in locs:
            cx, cy = _place(g, rng, LOCATIONS[key])
            field = np.zeros((H, W), np.float32)
            for _ in range(3):
                field = np.maximum(field, _bump(g, cx + rng.normal(0, 0.05), cy + rng.normal(0, 0.05),
                                                0.06 + 0.04 * sev, 0.06 + 0.04 * sev, 0.8))
            inside = field * g.lung
            delta += inside * F32(0.10 + 0.08 * sev)
            lesions.append(Lesion(key, (inside > 0.3) & g.lung_mask))
        return delta, lesions, None
    if name in ("nodule", "mass"):
        delta = np.zeros((H, W), np.float32)
        lesions = []
        for key in locs:
            cx, cy = _place(g, rng, LOCATIONS[key])
            r = (0.022 + 0.018 * sev) if name == "nodule" else (0.07 + 0.06 * sev)
            b = _bump(g, cx, cy, r, r * rng.uniform(0.85, 1.15), 0.15 if name == "mass" else 0.0)
            soft = np.clip(b * F32(6), 0, 1)
            delta += soft * F32(0.22 if name == "nodule" else 0.26)
            lesions.append(Lesion(key, soft > 0.5))
        return delta, lesions, None
    if name == "atelectasis":
        delta = np.zeros((H, W), np.float32)
        lesions = []
        for key in locs:
            loc = LOCATIONS[key]
            for side in ((0, 1) if loc.side == 2 else (loc.side,)):
                cx, cy = _place(g, rng, loc, side)
                slope = rng.uniform(-0.25, 0.25)
                th = 0.014 + 0.018 * sev
                length = 0.10 + 0.08 * sev
                dy = np.abs(g.y - F32(cy) - F32(slope) * (g.x - F32(cx)))
                band = np.clip(F32(1) - dy * F32(1 / th), 0, 1) * np.clip(
                    F32(1) - np.abs(g.x - F32(cx)) * F32(1 / length), 0, 1)
                inside = np.clip(band * F32(2), 0, 1) * g.lung
                delta += inside * F32(0.20)
                lesions.append(Lesion(key, (inside > 0.4) & g.lung_mask))
        return delta, lesions, None
    if name == "cardiomegaly":
        mask = (g.heart_depth > 0) & (g.dome_depth > 0)
        return None, [Lesion(locs[0], mask)], None
    if name == "effusion":
        delta = np.zeros((H, W), np.float32)
        lesions = []
        loc = LOCATIONS[locs[0]]
        sides = (0, 1) if loc.side == 2 else (loc.side,)
        for side in sides:
            height = p.dome(side) - p.lung_top
            level = p.dome(side) - (0.05 + 0.25 * sev) * height
            span = p.lung_cx + p.lung_ax - p.medial_x
            boundary = F32(level) - F32(0.14 / span) * (g.xs - F32(p.medial_x))
            fluid = np.clip((g.y - boundary) * F32(1 / 0.03), 0, 1)
            region = g.side_mask(side) & (g.wall_depth > 0) & (g.medial_depth > 0) & (g.heart_depth < 0) & (
                g.dome_depth > F32(-0.04))
            fluid = fluid * region
            delta += fluid * F32(0.30)
            key = f"{('right', 'left')[side]}_pleural"
            lesions.append(Lesion(key, fluid > 0.5))
        return delta, lesions, None
    if name == "pneumothorax":
        delta = np.zeros((H, W), np.float32)
        vessel = np.ones((H, W), np.float32)
        lesions = []
        for key in locs:
            side = LOCATIONS[key].side
            width = 0.02 + 0.07 * sev
            ycut = p.lung_top + (0.45 + 0.4 * sev) * (p.dome(side) - p.lung_top)
            if key.endswith("apical_lung"):
                ycut = p.lung_top + 0.28 * (p.dome(side) - p.lung_top)
                width *= 1.5
            rim = g.side_mask(side) & (g.lung_depth > 0) & (g.wall_depth < F32(width)) & (g.y < F32(ycut))
            rimf = rim.astype(np.float32)
            vessel -= rimf
            delta -= rimf * F32(0.07)
            line = np.clip(F32(1) - np.abs(g.wall_depth - F32(width)) * F32(1 / (0.8 * g.edge)), 0, 1)
            delta += line * (g.side_mask(side) & (g.lung_depth > 0) & (g.y < F32(ycut))) * F32(0.12)
            lesions.append(Lesion(key, rim))
        return delta, lesions, np.clip(vessel, 0, 1)
    if name == "edema":
        hx = g.xs - F32(0.17)
        hy = g.y + F32(0.0)
        field = np.clip(F32(1) - np.sqrt(hx * hx + hy * hy) * F32(1 / (0.35 + 0.15 * sev)), 0, 1)
        field = field * (F32(0.8) + F32(0.4) * g.texture) * g.lung
        delta = field * F32(0.14 + 0.12 * sev)
        return delta, [Lesion(locs[0], (field > 0.25) & g.lung_mask)], None
    if name == "emphysema":
        if locs[0] == "lung_apices":
            zone = g.y < F32(p.lung_top + 0.45 * (p.dome_r - p.lung_top))
        else:
            zone = np.ones((H, W), bool)
        mask = g.lung_mask & zone
        vessel = np.where(mask, F32(0.35), F32(1))
        return -(mask * g.lung) * F32(0.05 + 0.03 * sev), [Lesion(locs[0], mask)], vessel
    if name == "fibrosis":
        delta = np.zeros((H, W), np.float32)
        lesions = []
        for key in locs:
            loc = LOCATIONS[key]
            top = p.lung_top
            lo = top + loc.y_frac[0] * (p.dome_r - top)
            hi = top + loc.y_frac[1] * (p.dome_l - top)
            zone = (g.y > F32(lo)) & (g.y < F32(hi)) & g.lung_mask
            if loc.side != 2:
                zone &= g.side_mask(loc.side)
            reticular = np.clip(g.fine - F32(0.2), 0, 2) * F32(0.5) + F32(0.25)
            delta += zone * g.lung * reticular * F32(0.12 + 0.08 * sev)
            lesions.append(Lesion(key, zone))
        return delta, lesions, None
    if name == "pleural_thickening":
        side = LOCATIONS[locs[0]].side
        th = 0.012 + 0.015 * sev
        ycut = p.lung_top + 0.7 * (p.dome(side) - p.lung_top)
        band = g.side_mask(side) & (g.wall_depth > F32(-0.01)) & (g.wall_depth < F32(th)) & (g.y < F32(ycut)) & (
            g.xs > F32(p.lung_cx))
        return band * F32(0.16), [Lesion(locs[0], band)], None
    if name == "hernia":
        r = 0.07 + 0.04 * sev
        cx, cy = 0.02, p.dome_l - 0.06
        b = _bump(g, cx, cy, r * 1.2, r)
        circ = b > 0
        air = circ & (g.y < F32(cy - 0.2 * r))
        delta = np.clip(b * F32(5), 0, 1) * F32(0.10) - air * F32(0.16)
        return delta, [Lesion(locs[0], circ)], None
    if name in DEVICES:
        return None, [Lesion(locs[0], _draw_device(g, rng, name))], None
    raise KeyError(f"unknown finding {name!r}")


def _draw_device(g: Geometry, rng: np.random.Generator, name: str) -> np.ndarray:
    """Rasterise a tube, line or pacemaker as a boolean ``(H, W)`` mask (PIL lines in pixel coordinates)."""
    p = g.patient
    img = Image.new("L", (g.width, g.height), 0)
    draw = ImageDraw.Draw(img)
    w = max(1, int(round(0.010 / g.pitch)))

    def path(points: list[tuple[float, float]], width: int = w) -> None:
        pix = patient_to_pixel(g, np.asarray(points, dtype=np.float64))
        draw.line([tuple(map(float, q)) for q in pix], fill=255, width=width, joint="curve")

    if name == "et_tube":
        tip = -0.42 + rng.uniform(-0.05, 0.06)
        path([(0.0, -1.2), (0.0, tip)])
    elif name == "ng_tube":
        path([(0.02, -1.2), (0.03, -0.2), (0.06, p.dome_l + 0.05), (0.25, p.dome_l + 0.16)])
    elif name == "central_line":
        sx = rng.choice([-1.0, 1.0])
        path([(sx * 0.62, -0.80), (sx * 0.35, -0.68), (-0.04, -0.50), (-0.05, -0.22)])
    elif name == "pacemaker":
        gx, gy = 0.52, -0.62
        box = patient_to_pixel(g, np.array([[gx - 0.07, gy - 0.045], [gx + 0.07, gy + 0.045]]))
        draw.rounded_rectangle([tuple(box[0]), tuple(box[1])], radius=max(1, int(0.02 / g.pitch)), fill=255)
        path([(gx - 0.05, gy), (0.2, -0.55), (-0.02, -0.3), (-0.06, p.heart_y - 0.02)])
        path([(gx - 0.05, gy + 0.01), (0.22, -0.5), (0.0, -0.25), (0.08, p.heart_y + 0.12)])
    return np.asarray(img) > 127
