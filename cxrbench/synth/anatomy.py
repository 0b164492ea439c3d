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
           "patient_to_pixel", "texture_bank"]

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
    medial_x: float
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

    def lateral_xs(self, y: float) -> float:
        """Distance from the midline of the lateral lung border at height ``y`` (0 outside the ellipse)."""
        t = (y - self.lung_cy) / self.lung_ay
        return self.lung_cx + self.lung_ax * math.sqrt(max(0.0, 1.0 - t * t))


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
        lung_cx=float(rng.uniform(0.43, 0.47) * small),
        lung_ax=float(rng.uniform(0.36, 0.41) * small),
        lung_cy=float(rng.uniform(0.0, 0.06)),
        lung_ay=float(rng.uniform(0.70, 0.78)),
        dome_r=float(dome_r), dome_l=float(dome_r + rng.uniform(0.02, 0.08)),
        dome_k=float(rng.uniform(0.9, 1.4)),
        medial_x=float(rng.uniform(0.09, 0.12)),
        heart_x=float(rng.uniform(0.10, 0.14)), heart_y=float(dome_r - rng.uniform(0.16, 0.20)),
        heart_rx=float(heart_rx), heart_ry=float(rng.uniform(0.25, 0.29)),
        rib_spacing=float(rng.uniform(0.125, 0.15)), rib_phase=float(rng.uniform(0, 1)),
        body_half_width=float(rng.uniform(0.93, 1.02) * small),
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


@dataclass
class Geometry:
    """Fields of one image, all ``(H, W)`` float32 unless stated.

    ``x``, ``y``: patient coordinates; ``xs = |x|``; ``left``: bool, patient-left half;
    ``lung_depth``: approximate signed distance into the lungs (> 0 inside); ``wall_depth``: distance inside the
    lateral/apical lung ellipse only (used for pleural findings); ``dome_depth``: > 0 above the diaphragm;
    ``heart_depth``: > 0 inside the heart; ``lung``/``heart``: soft [0, 1] masks; ``texture``/``fine``: crops of
    the texture bank.
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
    lung_depth: np.ndarray
    lung: np.ndarray
    heart: np.ndarray
    texture: np.ndarray
    fine: np.ndarray
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
    qy = (y - F32(p.lung_cy)) * F32(1 / p.lung_ay)
    # the lateral radius grows from apex to base: a rounded-triangle lung rather than an ellipse
    qx = (xs - F32(p.lung_cx)) / (F32(p.lung_ax * 0.9) + F32(p.lung_ax * 0.16) * qy)
    wall = (1.0 - (qx * qx + qy * qy)) * F32(0.17)
    dome0 = np.where(left, F32(p.dome_l), F32(p.dome_r))
    dx = xs - F32(0.36)
    dome = dome0 + F32(p.dome_k) * dx * dx - y
    hx = (x - F32(p.heart_x)) * F32(1 / p.heart_rx)
    hy = (y - F32(p.heart_y)) * F32(1 / p.heart_ry)
    heart_d = (1.0 - (hx * hx + hy * hy)) * F32(0.12)
    depth = np.minimum(np.minimum(wall, dome), xs - F32(p.medial_x))
    depth = np.minimum(depth, -heart_d)
    edge = edge_px * pitch
    lung = np.clip(depth * F32(1 / edge) + F32(0.5), 0, 1)
    heart = np.clip(heart_d * F32(1 / edge) + F32(0.5), 0, 1)
    tex, fine = texture_bank(height, width)
    return Geometry(
        patient=p, height=height, width=width, pitch=pitch, x=x, y=y, xs=xs, left=left,
        wall_depth=wall, dome_depth=dome, heart_depth=heart_d, lung_depth=depth, lung=lung, heart=heart,
        texture=_crop(tex, height, width, p.texture_offset),
        fine=_crop(fine, height, width, (p.texture_offset[1], p.texture_offset[0])),
        edge=edge,
    )


def base_density(g: Geometry, vessel_scale: np.ndarray | float = 1.0) -> np.ndarray:
    """Attenuation of the normal chest ``(H, W)`` float32, roughly in ``[0, 1]`` (higher = whiter).

    ``vessel_scale`` (scalar or ``(H, W)``) scales the lung markings, e.g. 0 inside a pneumothorax.
    """
    p = g.patient
    x, y, xs = g.x, g.y, g.xs
    body = np.clip((F32(p.body_half_width) - xs) * F32(1 / 0.04), 0, 1)
    # soft tissue, thicker laterally and over the abdomen
    d = body * (F32(0.42) + F32(0.10) * xs)
    d += np.clip(-g.dome_depth * F32(8.0), 0, 1) * F32(0.10) * body
    # lungs: dark, with markings radiating from the hila
    hdx = xs - F32(0.16)
    hdy = y + F32(0.02)
    hilum = np.clip(F32(1.15) - F32(1.6) * np.sqrt(hdx * hdx + hdy * hdy), 0, 1)
    markings = (F32(0.5) + F32(0.5) * g.texture) * hilum
    if not isinstance(vessel_scale, float) or vessel_scale != 1.0:
        markings = markings * vessel_scale
    # lungs are less dark towards the bases (overlapping soft tissue) and at the hila (vessels)
    d -= g.lung * (F32(p.lung_density) - F32(0.10) * markings - F32(0.03) * y)
    d += g.heart * F32(0.05)
    # posterior ribs: curved bands, bright over the lungs
    r = y + F32(0.12) * xs - F32(0.55) * xs * xs
    ribs = np.cos(r * F32(2 * math.pi / p.rib_spacing) + F32(2 * math.pi * p.rib_phase))
    thorax = (g.wall_depth > F32(-0.05)) & (g.dome_depth > F32(-0.03)) & (xs > F32(0.06))
    d += np.clip(ribs - F32(0.3), 0, 1) * thorax * F32(0.075)
    # clavicles
    cy = F32(-0.70) - F32(0.20) * xs + F32(0.28) * xs * xs
    clav = np.clip(F32(1) - np.abs(y - cy) * F32(1 / 0.032), 0, 1) * ((xs > 0.03) & (xs < 0.60))
    d += clav * F32(0.13)
    # spine (vertebral bodies) and trachea
    spine = np.clip((F32(0.065) - xs) * F32(40), 0, 1)
    d += spine * (F32(0.07) + F32(0.03) * np.cos(y * F32(2 * math.pi / 0.09)))
    trach = np.clip((F32(0.038) - xs) * F32(60), 0, 1) * np.clip((F32(-0.33) - y) * F32(20), 0, 1)
    d -= trach * F32(0.11)
    if p.stomach_bubble:
        sx = (x - F32(0.33)) * F32(1 / 0.12)
        sy = (y - F32(p.dome_l + 0.13)) * F32(1 / 0.06)
        d -= np.clip(F32(1) - (sx * sx + sy * sy), 0, 1) * F32(0.10)
    if p.sex == "F":
        bx = (xs - F32(0.48)) * F32(1 / 0.36)
        by = (y - F32(p.dome_r - 0.02)) * F32(1 / 0.26)
        d += np.clip(F32(1) - (bx * bx + by * by), 0, 1) * F32(0.05)
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
