"""COVIDx CXR-4 (data-formats.md section 4): ``train/ val/ test/`` image folders and headerless, space-separated
``train.txt val.txt test.txt`` lines ``<patient_id> <filename> <label> <source>``.

Quirks reproduced: labels ``positive``/``negative``; free-form patient ids; multi-dot file names (actmed ``CR.1.2...``,
cohen ``10.1016-slash-...``, RICORD ``...-8.275-0.png``); png and jpg mixed; images of different sizes and modes
(``L`` and ``RGB``) by source.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..render import render_case
from ._common import TRUTH_FILE, Tick, patient_split, save_jpg, save_png, truth_record, uuid4, write_jsonl, write_lines

_SOURCES = ("rsna", "ricord", "bimcv", "stonybrook", "actmed", "cohen", "sirm")


def _naming(rng: np.random.Generator, source: str, k: int) -> tuple[str, str, float, float, str]:
    """(patient id, file name, height factor, width factor, PIL mode) in the style of ``source``."""
    n = int(rng.integers(1000, 999999))
    if source == "rsna":
        pid = uuid4(rng)
        return pid, f"{pid}.png", 1.0, 1.0, "L"
    if source == "ricord":
        pid = f"{n}-{int(rng.integers(1000, 9999)):06d}"
        return pid, f"MIDRC-RICORD-1C-{pid}-{int(rng.integers(10000, 99999))}-{k}.{int(rng.integers(100, 999))}-0.png", \
            1.0, 1.0, "L"
    if source == "bimcv":
        pid = f"sub-S{n:05d}"
        vp = "ap" if rng.random() < 0.5 else "pa"
        return pid, f"{pid}_ses-E{int(rng.integers(10000, 99999))}_run-1_bp-chest_vp-{vp}_cr-corrected.png", \
            1.1, 0.95, "RGB"
    if source == "stonybrook":
        pid = f"A{n}"
        return pid, f"{pid}-12-31-1900-NA-CHEST_AP_VIEWONLY-{int(rng.integers(10000, 99999))}-1.000000-AP-" \
                    f"{int(rng.integers(10000, 99999))}-1-{k + 1}.jpg", 1.0, 0.85, "L"
    if source == "actmed":
        pid = f"ANON{n % 500}"
        return pid, f"CR.1.2.840.113564.{n}.{int(rng.integers(10**9, 10**10))}.{k}.png", 0.9, 0.9, "L"
    if source == "cohen":
        pid = str(n % 1000)
        return pid, f"10.1016-slash-j.hrcr.2020.{n % 100:02d}.{int(rng.integers(1, 999)):03d}-{k}.jpg", \
            0.85, 1.0, "RGB"
    pid = f"COVID_{n % 900}"
    return pid, f"COVID({n % 900})-{k}.png", 1.0, 1.0, "L"


def write(root: Path, n: int, size: int, seed: int, tick: Tick) -> dict:
    """Write ``n`` images split by patient into train/val/test; returns a summary."""
    rng = np.random.default_rng(seed)
    patients: list[tuple[str, str, int]] = []  # (source, patient key, images)
    total = 0
    while total < n:
        c = int(min(rng.choice([1, 1, 1, 2]), n - total))
        source = str(rng.choice(_SOURCES))
        if source == "rsna":  # RSNA images are named <patientId>.png: one image per patient (unique names)
            c = 1
        patients.append((source, f"p{len(patients)}", c))
        total += c
    split = patient_split(rng, [p[1] for p in patients], {"train": 0.8, "val": 0.1, "test": 0.1})
    lines: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    truth = []
    used: set[str] = set()
    for source, key, count in patients:
        pid = None
        for k in range(count):
            while True:  # file names are unique in the real release (they are the image ids): redraw a clash
                pid_k, fname, fh, fw, mode = _naming(rng, source, k)
                if k:  # later images of the same patient keep the id, the source style of name
                    fname = fname.replace(pid_k, pid) if pid_k in fname else fname
                if fname not in used:
                    break
            used.add(fname)
            pid = pid or pid_k
            h = max(64, int(round(size * fh / 2)) * 2)
            w = max(64, int(round(size * fw / 2)) * 2)
            case = render_case(rng, "covidx", height=h, width=w)
            sp = split[key]
            path = root / sp / fname
            (save_jpg if fname.endswith(".jpg") else save_png)(path, case.image, mode)
            label = "positive" if case.finding("covid19") else "negative"
            lines[sp].append(f"{pid} {fname} {label} {source}")
            truth.append(truth_record(case, fname, f"{sp}/{fname}", split=sp, label=label, source=source,
                                      patient_id=pid))
            tick(1)
    for sp, ls in lines.items():
        write_lines(root / f"{sp}.txt", ls)
    write_jsonl(root / TRUTH_FILE, truth)
    summary = {sp: {"images": len(ls), "positive": sum(" positive " in x for x in ls)} for sp, ls in lines.items()}
    return {"images": n, "patients": len(patients), "splits": summary}
