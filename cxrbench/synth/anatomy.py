"""Procedural chest anatomy: per-patient parameters, geometry fields and the base attenuation image.

Coordinates.  The image is ``(height, width)``.  Image coordinates ``(u, v)`` have ``v`` in ``[-1, 1]`` from the
top row to the bottom row and ``u`` with the same pixel pitch, 0 at the centre column.  A per-patient similarity
transform (rotation, scale, shift) maps them to *patient* coordinates ``(x, y)``: ``x < 0`` is the image left,
which on a frontal radiograph is the **patient's right** (``x > 0`` is the patient's left, where the heart is).

Everything is computed with whole-array numpy operations on ``float32`` fields; nothing loops over pixels.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, replace

import numpy as np

__all__ = ["Patient", "Geometry", "sample_patient", "compute_geometry", "base_density", "image_grid",
           "patient_to_pixel", "texture_bank", "vessel_bank"]

F32 = np.float32


@dataclass(frozen=True)
class Patient:
    """Anatomy and acquisition parameters of one radiograph (all lengths in patient coordinates)."""

    sex: str  # "M" / "F"
    age: int
    view: str  # "PA" / "AP"
    # acquisition
    rotation: float  # radians
    scale: float
    shift_x: float
    shift_y: float
    # lungs (per side: index 0 = patient right = image left, 1 = patient left)
    lung_cx: float
    lung_ax: float
    lung_cy: float
    lung_ay: float
    dome_r: float  # top of the right hemidiaphragm dome (y)
    dome_l: float
    dome_k: float  # dome curvature
    medial_x: float  # half-width of the upper mediastinum
    # heart
    heart_x: float
    heart_y: float
    heart_rx: float
    heart_ry: float
    # bones and soft tissue
    rib_spacing: float
    rib_phase: float
    body_half_width: float
    stomach_bubble: bool
    lung_density: float  # how dark the lungs are (emphysema raises it)
    texture_offset: tuple[int, int]

    @property
    def lung_top(self) -> float:
        """y of the lung apices."""
        return self.lung_cy - self.lung_ay

    def dome(self, side: int) -> float:
        """y of the top of the hemidiaphragm dome on ``side`` (0 = patient right, 1 = patient left)."""
        return self.dome_r if side == 0 else self.dome_l

    @property
    def knob_y(self) -> float:
        """y of the aortic knob (about a third of the way from the apices to the right dome)."""
        return self.lung_top + 0.33 * (self.dome_r - self.lung_top)

    def lateral_xs(self, y: float) -> float:
        """Distance from the midline of the lateral lung border at height ``y`` (``lung_cx`` outside it)."""
        qy = _wall_qy(self, y)
        return _wall_cx(self, qy) + _wall_ax(self, qy) * math.sqrt(max(0.0, 1.0 - qy * qy))

    def medial_xs(self, y: float, side: int) -> float:
        """Distance from the midline of the mediastinal border (heart excluded) at height ``y`` on ``side``."""
        return float(_mediastinum(self, float(y), side))


def sample_patient(rng: np.random.Generator, ap_fraction: float = 0.4, jitter: float = 1.0) -> Patient:
    """Draw one patient's anatomy and acquisition; ``jitter`` scales the acquisition variation (site style)."""
    sex = "M" if rng.random() < 0.56 else "F"
    age = int(np.clip(rng.normal(52, 18), 1, 95))
    view = "AP" if rng.random() < ap_fraction else "PA"
    small = 0.93 if sex == "F" else 1.0
    heart_rx = rng.uniform(0.27, 0.32) * (1.06 if view == "AP" else 1.0)
    dome_r = rng.uniform(0.42, 0.56)
    return Patient(
        sex=sex, age=age, view=view,
        rotation=float(rng.normal(0, 0.03) * jitter),
        scale=float(rng.uniform(0.90, 1.0) * (1 + 0.03 * jitter * rng.standard_normal())),
        shift_x=float(rng.normal(0, 0.025) * jitter),
        shift_y=float(rng.normal(0.0, 0.025) * jitter),
        lung_cx=float(rng.uniform(0.40, 0.43) * small),
        lung_ax=float(rng.uniform(0.33, 0.37) * small),
        lung_cy=float(rng.uniform(-0.02, 0.04)),
        lung_ay=float(rng.uniform(0.68, 0.74)),
        dome_r=float(dome_r), dome_l=float(dome_r + rng.uniform(0.02, 0.08)),
        dome_k=float(rng.uniform(0.9, 1.4)),
        medial_x=float(rng.uniform(0.11, 0.14)),
        heart_x=float(rng.uniform(0.08, 0.12)), heart_y=float(dome_r - rng.uniform(0.16, 0.20)),
        heart_rx=float(heart_rx), heart_ry=float(rng.uniform(0.25, 0.29)),
        rib_spacing=float(rng.uniform(0.12, 0.14)), rib_phase=float(rng.uniform(0, 1)),
        body_half_width=float(rng.uniform(0.82, 0.88) * small),
        stomach_bubble=bool(rng.random() < 0.7),
        lung_density=float(rng.uniform(0.22, 0.27)),
        texture_offset=(int(rng.integers(0, 1 << 16)), int(rng.integers(0, 1 << 16))),
    )


@functools.lru_cache(maxsize=16)
def image_grid(height: int, width: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Row vector ``u`` ``(1, W)``, column vector ``v`` ``(H, 1)`` (float32) and the pixel pitch."""
    pitch = 2.0 / (height - 1)
    u = ((np.arange(width, dtype=np.float64) - (width - 1) / 2) * pitch).astype(F32)[None, :]
    v = (np.arange(height, dtype=np.float64) * pitch - 1.0).astype(F32)[:, None]
    u.setflags(write=False)
    v.setflags(write=False)
    return u, v, pitch


@functools.lru_cache(maxsize=8)
def texture_bank(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Two fixed, seamless-enough noise textures of shape ``(2H, 2W)`` (float32, zero mean, unit-ish std).

    ``[0]`` is smooth (vessel / blob irregularity scale), ``[1]`` is fine (quantum noise, reticulation).
    Patients crop them at their own offsets, which costs a slice instead of a random draw per image.
    """
    from scipy import ndimage

    rng = np.random.default_rng(20240611)
    base = rng.standard_normal((2 * height, 2 * width)).astype(F32)
    sigma = max(1.0, height / 96)
    smooth = ndimage.gaussian_filter(base, sigma, mode="wrap")
    smooth /= smooth.std()
    fine = rng.standard_normal((2 * height, 2 * width)).astype(F32)
    fine = ndimage.gaussian_filter(fine, 0.6, mode="wrap")
    fine /= fine.std()
    smooth.setflags(write=False)
    fine.setflags(write=False)
    return smooth, fine


def _crop(texture: np.ndarray, height: int, width: int, offset: tuple[int, int]) -> np.ndarray:
    oy = offset[0] % (texture.shape[0] - height)
    ox = offset[1] % (texture.shape[1] - width)
    return texture[oy:oy + height, ox:ox + width]


def _wall_qy(p: Patient, y):
    """Normalised height in the lateral wall curve: -1 at the apex, 0 at its widest point (low in the chest)."""
    c = p.lung_cy + 0.2 * p.lung_ay
    if isinstance(y, np.ndarray):
        t = (y - F32(c)) * F32(1 / (1.2 * p.lung_ay))
        return t * (F32(1) + F32(1.2 / 1.45 - 1) * (t > 0))
    return (y - c) / ((1.2 if y < c else 1.45) * p.lung_ay)


def _wall_cx(p: Patient, qy):
    """Centre of the wall curve: the apices sit medially (under the clavicles), the bases laterally."""
    return p.lung_cx + 0.07 * qy if not isinstance(qy, np.ndarray) else F32(p.lung_cx) + F32(0.07) * qy


def _wall_ax(p: Patient, qy):
    return p.lung_ax * (0.95 + 0.10 * qy) if not isinstance(qy, np.ndarray) else (
        F32(p.lung_ax * 0.95) + F32(p.lung_ax * 0.10) * qy)


def _hump(t):
    """Smooth bump of ``t``: 1 at 0, 0 for ``|t| >= 1`` (scalars or arrays)."""
    if isinstance(t, np.ndarray):
        b = np.clip(F32(1) - t * t, 0, 1)
        return b * b
    return max(0.0, 1.0 - t * t) ** 2


def _mediastinum(p: Patient, y, side: int | np.ndarray):
    """Distance from the midline of the mediastinal border (heart excluded) at height ``y``.

    Patient right (side 0): trachea / superior vena cava, widening slightly downwards.  Patient left (side 1):
    the aortic knob (arch seen end-on) and, below it, the pulmonary trunk.  Both narrow above the clavicles.
    """
    m = p.medial_x
    yk = p.knob_y
    arr = isinstance(y, np.ndarray)
    clip = (lambda a, lo, hi: np.clip(a, lo, hi)) if arr else (lambda a, lo, hi: min(hi, max(lo, a)))
    top = F32(0.02) * clip((F32(-0.50) - y) * F32(4), 0, 1) if arr else 0.02 * clip((-0.50 - y) * 4, 0, 1)
    if arr:
        right = F32(m) + F32(0.025) * clip((y - F32(yk)) * F32(3), 0, 1) - top
        left = (F32(m - 0.01) + F32(0.075) * _hump((y - F32(yk)) * F32(1 / 0.11))
                + F32(0.045) * _hump((y - F32(yk + 0.19)) * F32(1 / 0.10)) - top)
        return right + (left - right) * side
    if side == 0:
        return m + 0.025 * clip((y - yk) * 3, 0, 1) - top
    return m - 0.01 + 0.075 * _hump((y - yk) / 0.11) + 0.045 * _hump((y - yk - 0.19) / 0.10) - top


def _heart_depth(p: Patient, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Cardiac silhouette, > 0 inside: a tilted left-ventricle ellipse (convex left border down to the apex)
    united with a right-atrium ellipse (convex right heart border)."""
    rx, ry = p.heart_rx, p.heart_ry
    # left ventricle: long axis running down and to the patient's left
    ca, sa = math.cos(0.55), math.sin(0.55)
    dx = x - F32(p.heart_x + 0.14 * rx)
    dy = y - F32(p.heart_y + 0.22 * ry)
    a = (dx * F32(ca) + dy * F32(sa)) * F32(1 / (1.04 * rx))
    b = (dy * F32(ca) - dx * F32(sa)) * F32(1 / (0.90 * ry))
    lv = (F32(1) - (a * a + b * b)) * F32(0.11)
    # right atrium
    dx = x - F32(p.heart_x - 0.50 * rx)
    dy = y - F32(p.heart_y + 0.30 * ry)
    a = dx * F32(1 / (0.42 * rx))
    b = dy * F32(1 / (0.66 * ry))
    ra = (F32(1) - (a * a + b * b)) * F32(0.07)
    return np.maximum(lv, ra)


@dataclass
class Geometry:
    """Fields of one image, all ``(H, W)`` float32 unless stated.

    ``x``, ``y``: patient coordinates; ``xs = |x|``; ``left``: bool, patient-left half;
    ``lung_depth``: approximate signed distance into the lungs (> 0 inside); ``wall_depth``: distance inside the
    lateral/apical lung wall curve only (used for pleural findings); ``dome_depth``: > 0 above the diaphragm;
    ``heart_depth``: > 0 inside the heart; ``medial_depth``: > 0 lateral to the mediastinal border;
    ``lung``/``heart``: soft [0, 1] masks; ``texture``/``fine``: crops of the texture bank;
    ``vessels``: crop of the vessel-tree bank (lung markings, not yet masked).
    """

    patient: Patient
    height: int
    width: int
    pitch: float
    x: np.ndarray
    y: np.ndarray
    xs: np.ndarray
    left: np.ndarray
    wall_depth: np.ndarray
    dome_depth: np.ndarray
    heart_depth: np.ndarray
    medial_depth: np.ndarray
    lung_depth: np.ndarray
    lung: np.ndarray
    heart: np.ndarray
    texture: np.ndarray
    fine: np.ndarray
    vessels: np.ndarray
    edge: float

    @property
    def lung_mask(self) -> np.ndarray:
        """Hard lung mask ``(H, W)`` bool."""
        return self.lung_depth > 0

    def side_mask(self, side: int) -> np.ndarray:
        """bool ``(H, W)``: the patient-right (0) or patient-left (1) half."""
        return self.left if side == 1 else ~self.left


def compute_geometry(patient: Patient, height: int, width: int, edge_px: float = 1.2) -> Geometry:
    """Evaluate the anatomy fields of ``patient`` on an ``(height, width)`` grid; ``edge_px`` = edge softness."""
    u, v, pitch = image_grid(height, width)
    p = patient
    c, s = math.cos(p.rotation), math.sin(p.rotation)
    inv = 1.0 / p.scale
    # (x, y) = R^T ((u, v) - t) / scale, as broadcast row + column -> one (H, W) op each.
    x = (u * F32(c * inv) - F32((c * p.shift_x + s * p.shift_y) * inv)) + v * F32(s * inv)
    y = (v * F32(c * inv) - F32((-s * p.shift_x + c * p.shift_y) * inv)) + u * F32(-s * inv)
    xs = np.abs(x)
    left = x > 0
    # lateral wall: apex under the clavicle, widest low down, so the costophrenic angles point down laterally
    qy = _wall_qy(p, y)
    qx = (xs - _wall_cx(p, qy)) / _wall_ax(p, qy)
    wall = (1.0 - (qx * qx + qy * qy)) * F32(0.17)
    # hemidiaphragms: dome peak at mid-clavicular line, steeper laterally into the costophrenic sulcus
    dome0 = F32(p.dome_r) + F32(p.dome_l - p.dome_r) * left
    dx = xs - F32(0.30)
    dome = dome0 + dx * dx * (F32(p.dome_k) + F32(1.4 * p.dome_k) * np.clip(dx * F32(12), 0, 1)) - y
    heart_d = _heart_depth(p, x, y)
    medial = xs - _mediastinum(p, y, left)
    depth = np.minimum(np.minimum(wall, dome), medial)
    depth = np.minimum(depth, -heart_d)
    edge = edge_px * pitch
    lung = np.clip(depth * F32(1 / edge) + F32(0.5), 0, 1)
    heart = np.clip(heart_d * F32(1 / edge) + F32(0.5), 0, 1)
    tex, fine = texture_bank(height, width)
    return Geometry(
        patient=p, height=height, width=width, pitch=pitch, x=x, y=y, xs=xs, left=left,
        wall_depth=wall, dome_depth=dome, heart_depth=heart_d, medial_depth=medial, lung_depth=depth, lung=lung,
        heart=heart, texture=_crop(tex, height, width, p.texture_offset),
        fine=_crop(fine, height, width, (p.texture_offset[1], p.texture_offset[0])),
        vessels=_vessel_crop(p, height, width), edge=edge,
    )


# ----------------------------------------------------------------------------------------------------------
# Lung markings: a small bank of pre-drawn branching vessel trees in the canonical frame.

_VESSEL_VARIANTS = 6
_HILA = ((-0.20, -0.05), (0.21, -0.10))  # patient right / left hilum (left higher)


@functools.lru_cache(maxsize=4)
def vessel_bank(height: int, width: int) -> tuple[np.ndarray, int]:
    """Pre-drawn pulmonary vessel trees ``(K, H + 2m, W + 2m)`` float32 in [0, ~1] and the margin ``m`` (px).

    Each variant holds branching vessels radiating from both hila, thinning and fading to the periphery, in
    the frame of an unrotated, unshifted patient at scale 1.  Drawn once per size with a fixed seed.
    """
    from PIL import Image, ImageDraw
    from scipy import ndimage

    pitch = 2.0 / (height - 1)
    m = int(math.ceil(0.22 / pitch))
    hh, ww = height + 2 * m, width + 2 * m
    ss = 2  # supersampling
    ys, xs_ = np.mgrid[0:hh, 0:ww].astype(np.float32)
    px = (xs_ - m - (width - 1) / 2) * pitch
    py = (ys - m) * pitch - 1.0
    out = np.empty((_VESSEL_VARIANTS, hh, ww), np.float32)
    rng = np.random.default_rng(7_2024)

    def to_pix(x: float, y: float) -> tuple[float, float]:
        return ((x / pitch + (width - 1) / 2 + m) * ss, ((y + 1.0) / pitch + m) * ss)

    for k in range(_VESSEL_VARIANTS):
        img = Image.new("L", (ww * ss, hh * ss), 0)
        draw = ImageDraw.Draw(img)
        segs: list[tuple[float, float, float, float, float, int]] = []

        def branch(x: float, y: float, ang: float, length: float, w: float, depth: int, sign: float) -> None:
            bend = rng.normal(0, 0.12)
            x1 = x + sign * math.cos(ang) * length
            y1 = y + math.sin(ang) * length
            segs.append((x, y, x1, y1, w, depth))
            if depth >= 6 or w < 0.0025:
                return
            spread = rng.uniform(0.22, 0.5)
            for d in (-1, 1):
                if depth >= 3 and rng.random() < 0.15:
                    continue
                branch(x1, y1, ang + bend + d * spread * rng.uniform(0.6, 1.0), length * rng.uniform(0.68, 0.86),
                       w * rng.uniform(0.62, 0.78), depth + 1, sign)

        for side, (hx, hy) in enumerate(_HILA):
            sign = 1.0 if side == 1 else -1.0
            for ang in np.linspace(-1.35, 1.25, 7):
                a = float(ang + rng.normal(0, 0.08))
                length = rng.uniform(0.07, 0.10) * (1.25 if a > 0.4 else 1.0)
                branch(hx + sign * rng.normal(0.0, 0.01), hy + rng.normal(0, 0.03), a, length,
                       rng.uniform(0.020, 0.028), 0, sign)
        for x0, y0, x1, y1, w, depth in sorted(segs, key=lambda t: t[4]):
            wpx = max(1, int(round(w / pitch * ss)))
            draw.line([to_pix(x0, y0), to_pix(x1, y1)], fill=int(90 + 165 * min(1.0, w / 0.022)), width=wpx)
        arr = np.asarray(img, dtype=np.float32).reshape(hh, ss, ww, ss).mean(axis=(1, 3)) / 255.0
        arr = ndimage.gaussian_filter(arr, max(0.5, 0.45 * height / 256))
        # fade to the periphery: markings are barely visible in the outer third of the lungs
        fade = np.ones((hh, ww), np.float32)
        for hx, hy in _HILA:
            r = np.sqrt((px - hx) ** 2 + (py - hy) ** 2)
            fade = np.where((px > 0) == (hx > 0), np.clip(1.2 - r / 0.75, 0.15, 1.0), fade)
        out[k] = arr * fade
    out.setflags(write=False)
    return out, m


def _vessel_crop(p: Patient, height: int, width: int) -> np.ndarray:
    bank, m = vessel_bank(height, width)
    pitch = 2.0 / (height - 1)
    oy = int(np.clip(m - round(p.shift_y / pitch), 0, 2 * m))
    ox = int(np.clip(m - round(p.shift_x / pitch), 0, 2 * m))
    k = (p.texture_offset[0] >> 3) % bank.shape[0]
    return bank[k, oy:oy + height, ox:ox + width]


# ----------------------------------------------------------------------------------------------------------
# Base attenuation.


def _box(g: Geometry, x0: float, x1: float, y0: float, y1: float) -> tuple[slice, slice] | None:
    """Pixel slices covering the patient-coordinate rectangle ``[x0, x1] x [y0, y1]`` (None if off-image)."""
    pts = patient_to_pixel(g, np.array([[x0, y0], [x1, y0], [x0, y1], [x1, y1]], dtype=np.float64))
    c0, r0 = np.floor(pts.min(axis=0)).astype(int) - 1
    c1, r1 = np.ceil(pts.max(axis=0)).astype(int) + 2
    c0, r0 = max(c0, 0), max(r0, 0)
    c1, r1 = min(c1, g.width), min(r1, g.height)
    if c0 >= c1 or r0 >= r1:
        return None
    return slice(r0, r1), slice(c0, c1)


def _tube(dist: np.ndarray, half: float) -> np.ndarray:
    """Projected thickness of a round bone/tube at distance ``dist`` from its axis (1 on the axis)."""
    t = np.clip(F32(1) - dist * dist * F32(1 / (half * half)), 0, 1)
    return np.sqrt(t)


def _shoulder(d: np.ndarray, g: Geometry, sign: float) -> None:
    """Arm soft tissue, humeral head and shaft, acromion and scapula edge at one upper corner (in place)."""
    p = g.patient
    bw = p.body_half_width
    box = _box(g, bw - 0.29, 1.3, -0.96, -0.02) if sign > 0 else _box(g, -1.3, 0.29 - bw, -0.96, -0.02)
    if box is None:
        return
    x, y = g.x[box] * F32(sign), g.y[box]
    # humeral head (partly outside the glenoid), shaft running down the arm
    hx, hy, hr = bw + 0.01, -0.72, 0.115
    dx, dy = x - F32(hx), y - F32(hy)
    head = _tube(np.sqrt(dx * dx + dy * dy), hr)
    sx = x - F32(hx + 0.03) - F32(0.06) * (y - F32(hy))
    shaft = _tube(sx, 0.055) * np.clip((y - F32(hy)) * F32(12), 0, 1)
    bone = np.maximum(head * F32(0.17), shaft * F32(0.15))
    # acromion over the humeral head
    ax_, ay_ = (x - F32(bw - 0.06)) * F32(1 / 0.11), (y - F32(-0.835)) * F32(1 / 0.028)
    bone = np.maximum(bone, np.clip(F32(1) - (ax_ * ax_ + ay_ * ay_), 0, 1) * F32(0.12))
    # scapula: a thin plate between its lateral border (glenoid -> inferior angle) and the chest wall
    t = np.clip((y - F32(-0.66)) * F32(1 / 0.62), 0, 1)
    lat = F32(bw - 0.06) - F32(0.20) * t
    plate = np.clip((lat - x) * F32(40), 0, 1) * np.clip((x - lat + F32(0.18)) * F32(15), 0, 1)
    plate *= np.clip((y - F32(-0.72)) * F32(20), 0, 1) * np.clip((F32(-0.04) - y) * F32(12), 0, 1)
    rim = np.clip(F32(1) - np.abs(x - lat + F32(0.008)) * F32(1 / 0.012), 0, 1) * (t < 1) * (y > F32(-0.7))
    d[box] += bone + plate * F32(0.035) + rim * F32(0.03)


def base_density(g: Geometry, vessel_scale: np.ndarray | float = 1.0) -> np.ndarray:
    """Attenuation of the normal chest ``(H, W)`` float32, roughly in ``[0, 1]`` (higher = whiter).

    ``vessel_scale`` (scalar or ``(H, W)``) scales the lung markings, e.g. 0 inside a pneumothorax.
    """
    p = g.patient
    y, xs = g.y, g.xs
    bw = p.body_half_width
    # body outline: chest wall (a rounded slab whose projected thickness falls off smoothly at the sides),
    # shoulders sloping up to the neck, arms beside the chest with an air gap (axilla) below the shoulder
    q = xs * F32(1 / bw)
    d = np.clip(F32(1) - q * q, 0, F32(0.25))
    d *= F32(4) * F32(0.38) + xs * F32(0.4)
    # abdomen below the domes
    d += np.clip(g.dome_depth * F32(-0.8), 0, F32(0.1))
    top = _box(g, -1.5, 1.5, -1.3, -0.62)
    if top is not None:  # shoulders sloping up to the neck, air above them
        tx = g.xs[top]
        sh = np.clip((tx - F32(0.26)) * F32(1 / 0.5), 0, 1)
        ytop = F32(-1.05) + F32(0.19) * sh * (F32(2) - sh) + F32(2.2) * np.square(np.clip(tx - F32(bw + 0.1), 0, 1))
        d[top] *= np.clip((g.y[top] - ytop) * F32(25), 0, 1)
    for sign in (-1.0, 1.0):  # arms beside the chest, with an air gap (axilla) below the shoulder
        box = _box(g, bw - 0.02, 1.5, -1.3, 1.3) if sign > 0 else _box(g, -1.5, 0.02 - bw, -1.3, 1.3)
        if box is None:
            continue
        ax_, ay_ = g.xs[box], g.y[box]
        qa = (ax_ - F32(bw + 0.18)) * F32(1 / 0.16)
        arm = np.sqrt(np.clip(F32(1) - qa * qa, 0, 1)) * np.clip(
            (F32(-0.50) - ay_) * F32(8) + (ax_ - F32(bw + 0.07)) * F32(40), 0, 1)
        sh = F32(-0.86) + F32(2.2) * np.square(np.clip(ax_ - F32(bw + 0.1), 0, 1))
        d[box] += arm * np.clip((ay_ - sh) * F32(25), 0, 1) * F32(0.30)
    # lungs: dark, less so towards the bases (overlapping soft tissue) and at the apices (shoulder girdle)
    lungd = F32(p.lung_density - 0.022) + F32(0.03) * y
    apex = _box(g, -1.5, 1.5, -1.3, p.lung_top + 0.24)
    if apex is not None:
        lungd[apex] -= np.clip((F32(p.lung_top + 0.22) - g.y[apex]) * F32(4.5), 0, 1) * F32(0.05)
    d -= g.lung * lungd
    # markings: pre-drawn vessel trees from the hila, plus fine parenchymal mottling near the hila
    vess = g.vessels * F32(0.12) + g.texture * F32(0.022)
    if not isinstance(vessel_scale, float) or vessel_scale != 1.0:
        vess = vess * vessel_scale
    d += g.lung * vess
    # mediastinum and heart (denser than the soft tissue over the lungs), hilar vessels
    d += np.clip(F32(1) - g.medial_depth * F32(1 / 0.02), 0, 1) * F32(0.03) + g.heart * F32(0.05)
    # posterior ribs: arcs rising from the spine, peaking mid-lung, turning down along the lateral wall;
    # interspaces widen downwards
    xn = xs * F32(1 / max(0.6, p.lung_cx + p.lung_ax))
    r = y - xn * (F32(-0.50) + xn * (F32(0.30) + xn * F32(0.45)))
    t = r - F32(0.12) * r * r
    ribs = np.clip((np.cos(t * F32(2 * math.pi / p.rib_spacing) + F32(2 * math.pi * p.rib_phase)) - F32(0.05))
                   * F32(2.2), 0, 1)
    cage = np.clip((g.wall_depth + F32(0.06)) * F32(20), 0, 1) * np.clip((xs - F32(0.05)) * F32(30), 0, 1)
    cage *= np.clip((g.dome_depth + F32(0.10)) * F32(10), 0.25, 1)
    cage *= F32(1) - F32(0.6) * np.clip(F32(0.5) - g.medial_depth * F32(10), 0, 1)
    d += ribs * cage * F32(0.055)
    # anterior ribs: fainter, sloping down medially, fading out at the costal cartilages
    box = _box(g, -1.2, 1.2, -1.2, 0.2)
    rows = box[0] if box is not None else slice(0, 0)
    la = F32(0.95) - xn[rows]
    r2 = y[rows] - la * (F32(0.55) - F32(0.20) * la)
    ribs2 = np.clip(np.cos(r2 * F32(2 * math.pi / (1.3 * p.rib_spacing)) + F32(2 * math.pi * p.rib_phase + 1.3))
                    - F32(0.2), 0, 1)
    ribs2 = ribs2 * cage[rows] * np.clip((xn[rows] - F32(0.35)) * F32(5), 0, 1)
    d[rows] += ribs2 * np.clip((F32(0.2) - y[rows]) * F32(4), 0, 1) * F32(0.03)
    # clavicles: round bones from the sternoclavicular joints up to the acromia
    box = _box(g, -0.95, 0.95, -1.05, -0.45)
    if box is not None:
        bx, by = g.xs[box], g.y[box]
        cy = F32(-0.53) - F32(0.34) * bx + F32(0.12) * bx * bx
        half = F32(0.036) - F32(0.012) * bx
        clav = np.sqrt(np.clip(F32(1) - np.square((by - cy) / half), 0, 1))
        clav *= np.clip((bx - F32(0.05)) * F32(40), 0, 1) * np.clip((F32(bw - 0.08) - bx) * F32(20), 0, 1)
        d[box] += clav * F32(0.14)
    _shoulder(d, g, 1.0)
    _shoulder(d, g, -1.0)
    # spine (vertebral bodies with end plates) and the descending aorta beside it
    spine = np.clip((F32(0.068) - xs) * F32(40), 0, 1)
    d += spine * (F32(0.045) + F32(0.02) * np.cos(y * F32(2 * math.pi / 0.09)))
    # trachea and main bronchi: air columns, splitting at the carina
    box = _box(g, -0.3, 0.3, -1.3, p.knob_y + 0.3)
    if box is not None:
        bx, by = g.x[box], g.y[box]
        car = F32(p.knob_y + 0.04)
        trach = np.clip((F32(0.036) - np.abs(bx)) * F32(60), 0, 1) * np.clip((car - by) * F32(20), 0, 1)
        below = np.clip((by - car) * F32(30), 0, 1) * np.clip((car + F32(0.17) - by) * F32(12), 0, 1)
        rb = np.abs(bx + (by - car) * F32(0.65))
        lb = np.abs(bx - (by - car) * F32(1.2))
        bronchi = np.clip((F32(0.022) - np.minimum(rb, lb)) * F32(60), 0, 1) * below
        d[box] -= np.maximum(trach, bronchi) * F32(0.11)
    if p.stomach_bubble:
        box = _box(g, 0.15, 0.5, p.dome_l + 0.03, p.dome_l + 0.25)
        if box is not None:
            sx = (g.x[box] - F32(0.33)) * F32(1 / 0.12)
            sy = (g.y[box] - F32(p.dome_l + 0.13)) * F32(1 / 0.06)
            d[box] -= np.clip(F32(1) - (sx * sx + sy * sy), 0, 1) * F32(0.10)
    if p.sex == "F":
        for sign in (-1.0, 1.0):
            box = _box(g, sign * 0.46 - 0.34, sign * 0.46 + 0.34, p.dome_r - 0.28, p.dome_r + 0.24)
            if box is None:
                continue
            bx = (g.xs[box] - F32(0.46)) * F32(1 / 0.34)
            by = (g.y[box] - F32(p.dome_r - 0.02)) * F32(1 / 0.26)
            br = np.clip(F32(1) - (bx * bx + by * by), 0, 1)
            d[box] += np.sqrt(br) * F32(0.045)
    return d


def patient_to_pixel(g: Geometry, xy: np.ndarray) -> np.ndarray:
    """Map patient coordinates ``(N, 2)`` to pixel coordinates ``(N, 2)`` as (column, row) floats."""
    p = g.patient
    c, s = math.cos(p.rotation), math.sin(p.rotation)
    px, py = xy[:, 0], xy[:, 1]
    u = p.scale * (c * px - s * py) + p.shift_x
    v = p.scale * (s * px + c * py) + p.shift_y
    col = u / g.pitch + (g.width - 1) / 2
    row = (v + 1.0) / g.pitch
    return np.stack([col, row], axis=1)


def with_changes(patient: Patient, **changes: object) -> Patient:
    """A copy of ``patient`` with some parameters changed (findings such as cardiomegaly use this)."""
    return replace(patient, **changes)
