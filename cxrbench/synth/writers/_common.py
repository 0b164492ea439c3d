"""Helpers shared by the dataset writers: ids, deterministic files, DICOM, ground-truth sidecars."""

from __future__ import annotations

import gzip
import io
import json
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

from ..render import Case

__all__ = ["LABEL_FRAME", "box_in_label_frame", "mask_in_label_frame", "Tick", "TRUTH_FILE", "uuid4", "patient_split", "save_png", "save_jpg", "write_csv", "write_csv_gz",
           "write_lines", "write_dicom", "truth_record", "write_jsonl", "uid_triplet"]

#: The frame (px) the real NIH, RSNA and SIIM releases state their boxes and RLE masks in; the writers state
#: theirs in it too, whatever ``size`` the images are written at (like a resized mirror of a real release).
LABEL_FRAME = 1024


def box_in_label_frame(box: tuple[float, float, float, float], size: int,
                       jitter: tuple[float, ...] = (0.0, 0.0, 0.0, 0.0)) -> tuple[float, ...]:
    """An ``(x, y, w, h)`` box of a ``size``-px image in the :data:`LABEL_FRAME` frame, plus ``jitter`` (label-frame
    px), clipped to the frame (a lesion's box may reach past the image edge by a fraction of a pixel)."""
    scale = LABEL_FRAME / size
    x, y, w, h = (float(v) * scale + float(j) for v, j in zip(box, jitter))
    x0, y0 = max(x, 0.0), max(y, 0.0)
    return (x0, y0, min(x + w, LABEL_FRAME) - x0, min(y + h, LABEL_FRAME) - y0)


def mask_in_label_frame(mask: np.ndarray) -> np.ndarray:
    """A ``(size, size)`` mask resampled (nearest) to ``LABEL_FRAME x LABEL_FRAME``."""
    h, w = mask.shape
    rows = (np.arange(LABEL_FRAME) * h) // LABEL_FRAME
    cols = (np.arange(LABEL_FRAME) * w) // LABEL_FRAME
    return np.asarray(mask, dtype=bool)[np.ix_(rows, cols)]


#: One JSON line per image: findings, severities, anatomies, boxes (the generator's own ground truth).
TRUTH_FILE = "synthcxr_truth.jsonl"

Tick = Callable[[int], None]


def _bare_age(age: str):
    """A PatientAge element holding a bare number ('51'), as the real RSNA and SIIM files do.

    That is not a valid AS value ('051Y'); pydicom would warn (and log) once per file, so the element
    is built with validation off.
    """
    from pydicom.config import IGNORE
    from pydicom.dataelem import DataElement

    return DataElement(0x00101010, "AS", age, validation_mode=IGNORE)


def uuid4(rng: np.random.Generator) -> str:
    """A version-4 UUID string drawn from ``rng`` (deterministic)."""
    return str(uuid.UUID(bytes=rng.bytes(16), version=4))


def patient_split(rng: np.random.Generator, patients: list[Any], fractions: dict[str, float]) -> dict[Any, str]:
    """Assign each patient to a split with the given fractions (shuffled, deterministic)."""
    order = list(rng.permutation(len(patients)))
    out: dict[Any, str] = {}
    names = list(fractions)
    bounds = np.cumsum([fractions[n] for n in names]) * len(patients)
    for rank, i in enumerate(order):
        k = int(np.searchsorted(bounds, rank, side="right"))
        out[patients[int(i)]] = names[min(k, len(names) - 1)]
    return out


def save_png(path: Path, image: np.ndarray, mode: str = "L") -> None:
    """Save a ``(H, W)`` uint8 image as PNG (mode ``L``, ``RGB`` or ``RGBA``); no timestamps, so byte-stable."""
    path.parent.mkdir(parents=True, exist_ok=True)
    im = Image.fromarray(image, "L")
    if mode != "L":
        im = im.convert(mode)
    im.save(path, format="PNG", compress_level=1)


def save_jpg(path: Path, image: np.ndarray, mode: str = "L", quality: int = 92) -> None:
    """Save a ``(H, W)`` uint8 image as baseline JPEG."""
    path.parent.mkdir(parents=True, exist_ok=True)
    im = Image.fromarray(image, "L")
    if mode != "L":
        im = im.convert(mode)
    im.save(path, format="JPEG", quality=quality)


def write_csv(path: Path, df: pd.DataFrame, **kwargs: Any) -> None:
    """Write a CSV with LF line endings and no index."""
    path.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(path, index=False, lineterminator="\n", **kwargs)


def write_csv_gz(path: Path, df: pd.DataFrame) -> None:
    """Write a gzip-compressed CSV with a fixed gzip header (mtime 0, no name), so equal data -> equal bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = df.to_csv(index=False, lineterminator="\n").encode()
    with open(path, "wb") as fh, gzip.GzipFile(filename="", mode="wb", fileobj=fh, mtime=0) as gz:
        gz.write(text)


def write_lines(path: Path, lines: Iterable[str]) -> None:
    """Write text lines, LF-terminated (trailing newline included)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")


def uid_triplet(rng: np.random.Generator, counter: int) -> tuple[str, str, str]:
    """(study, series, SOP) UIDs in the Kaggle style ``1.2.276.0.7230010.3.1.{2,3,4}.8323329.<n>.<ts>.<m>``."""
    ts = 1517874000 + int(rng.integers(0, 10000))
    m = int(rng.integers(10000, 999000))
    n = 1000 + counter
    base = "1.2.276.0.7230010.3.1.{k}.8323329.{n}.{ts}.{m}"
    return (base.format(k=2, n=n, ts=ts, m=m), base.format(k=3, n=n, ts=ts, m=m - 1),
            base.format(k=4, n=n, ts=ts, m=m + 1))


def write_dicom(path: Path, image: np.ndarray, *, patient_id: str, sex: str, age: int, view: str,
                uids: tuple[str, str, str], pixel_spacing: float, series_description: str | None = None) -> None:
    """Write an uncompressed (Explicit VR Little Endian) 8-bit MONOCHROME2 CR DICOM of a ``(H, W)`` uint8 image."""
    import pydicom
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian

    study, series, sop = uids
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7"  # Secondary Capture
    meta.MediaStorageSOPInstanceUID = sop
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = "1.2.276.0.7230010.3.0.3.6.0"
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = sop
    ds.StudyDate = "19010101"
    ds.StudyTime = ""
    ds.Modality = "CR"
    ds.ConversionType = "WSD"
    ds.ReferringPhysicianName = ""
    ds.SeriesDescription = series_description or f"view: {view}"
    ds.PatientName = patient_id
    ds.PatientID = patient_id
    ds.PatientBirthDate = ""
    ds.PatientSex = sex
    ds.add(_bare_age(str(age)))
    ds.BodyPartExamined = "CHEST"
    ds.ViewPosition = view
    ds.StudyInstanceUID = study
    ds.SeriesInstanceUID = series
    ds.StudyID = ""
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    ds.PatientOrientation = ""
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = int(image.shape[0]), int(image.shape[1])
    ds.PixelSpacing = [f"{pixel_spacing:g}", f"{pixel_spacing:g}"]
    ds.BitsAllocated = 8
    ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    ds.PixelData = np.ascontiguousarray(image, dtype=np.uint8).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    pydicom.dcmwrite(buf, ds, enforce_file_format=True)
    path.write_bytes(buf.getvalue())


def truth_record(case: Case, image_id: str, path: str, **extra: Any) -> dict[str, Any]:
    """The JSON-able ground truth of one image (findings with severity, location keys, anatomies and boxes)."""
    findings = []
    for f in case.findings:
        findings.append({
            "name": f.name, "nih_label": f.spec.nih, "severity": round(f.severity, 4),
            "severity_word": f.severity_word, "device": f.spec.device,
            "lesions": [{"location": les.location, "box_xywh": les.box()} for les in f.lesions],
            "anatomies": list(f.anatomies),
        })
    rec = {"image_id": image_id, "path": path, "height": int(case.image.shape[0]),
           "width": int(case.image.shape[1]), "view": case.patient.view, "sex": case.patient.sex,
           "age": case.patient.age, "site": case.site, "findings": findings}
    rec.update(extra)
    return rec


def write_jsonl(path: Path, records: Iterable[dict[str, Any]]) -> None:
    """One compact JSON object per line, keys in insertion order."""
    with open(path, "w", encoding="utf-8") as fh:
        for r in records:
            fh.write(json.dumps(r, separators=(",", ":")) + "\n")
