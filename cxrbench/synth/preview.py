"""A sample grid (PNG) of SynthCXR images with finding masks and boxes overlaid, for the documentation.

``python -m cxrbench.synth.preview docs/img/synthcxr_grid.png``
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from .render import render_case

#: One panel per finding kind (plus a normal chest), in grid order.
PANELS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("nih", ()), ("nih", ("effusion",)), ("siim", ("pneumothorax",)), ("nih", ("cardiomegaly", "pacemaker")),
    ("rsna", ("pneumonia",)), ("nih", ("consolidation",)), ("nih", ("nodule",)), ("nih", ("mass",)),
    ("nih", ("atelectasis",)), ("mimic", ("edema", "et_tube", "ng_tube")), ("nih", ("emphysema",)),
    ("nih", ("fibrosis",)), ("nih", ("pleural_thickening",)), ("nih", ("hernia",)), ("covidx", ("covid19",)),
    ("mimic", ("infiltration", "central_line")),
)
_COLOURS = ((255, 64, 64), (64, 200, 255), (255, 200, 0), (120, 255, 120))


def sample_grid(path: str | Path, size: int = 256, seed: int = 0, columns: int = 4) -> Path:
    """Render :data:`PANELS` and save them as one RGB grid with mask outlines and lesion boxes."""
    rng = np.random.default_rng(seed)
    tiles = []
    for site, names in PANELS:
        case = render_case(rng, site, height=size, names=list(names))
        rgb = np.repeat(case.image[:, :, None], 3, axis=2)
        for k, f in enumerate(case.findings):
            m = f.mask
            edge = m & ~(np.roll(m, 1, 0) & np.roll(m, -1, 0) & np.roll(m, 1, 1) & np.roll(m, -1, 1))
            rgb[edge] = _COLOURS[k % len(_COLOURS)]
        im = Image.fromarray(rgb)
        draw = ImageDraw.Draw(im)
        for k, f in enumerate(case.findings):
            if f.spec.device or f.name in ("emphysema", "fibrosis", "edema", "cardiomegaly", "pleural_thickening"):
                continue
            for les in f.lesions:
                x, y, w, h = les.box()
                draw.rectangle([x - 1, y - 1, x + w, y + h], outline=_COLOURS[(k + 2) % len(_COLOURS)])
        label = f"{site}: " + (", ".join(f.name for f in case.findings) or "normal")
        draw.rectangle([0, 0, size, 12], fill=(0, 0, 0))
        draw.text((3, 1), label, fill=(255, 255, 255))
        tiles.append(np.asarray(im))
    rows = [np.concatenate(tiles[i:i + columns], axis=1) for i in range(0, len(tiles), columns)]
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.concatenate(rows, axis=0)).save(out)
    return out


if __name__ == "__main__":  # pragma: no cover
    sample_grid(sys.argv[1] if len(sys.argv) > 1 else "docs/img/synthcxr_grid.png")
