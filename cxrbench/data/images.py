"""Image reading shared by every dataset adapter: DICOM, PNG and JPG -> float32 grayscale in [0, 1].

``read_image(path)`` returns an ``(H, W)`` float32 array where 0 is black and 1 is white *as displayed*
(bone bright, lung dark on a radiograph).  ``read_header(path)`` reads only the header (for preflight).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

__all__ = [
    "DICOM_SUFFIXES",
    "ImageHeader",
    "ImageReadError",
    "MissingDecoderError",
    "read_dicom",
    "read_header",
    "read_image",
    "read_pil",
    "resize_image",
]

DICOM_SUFFIXES = (".dcm", ".dicom")


class ImageReadError(OSError):
    """An image file that is missing, truncated or not understood; the message names the file."""


class MissingDecoderError(ImageReadError):
    """A compressed DICOM whose transfer syntax no installed decoder can read; the message names the options."""


@dataclass(frozen=True)
class ImageHeader:
    """What a header says about an image without decoding its pixels."""

    path: str
    format: str  # "dicom", "png", "jpeg", ...
    width: int
    height: int
    detail: str = ""  # mode / photometric interpretation and bit depth


def _is_dicom(path: Path) -> bool:
    if path.suffix.lower() in DICOM_SUFFIXES:
        return True
    if path.suffix:
        return False
    with open(path, "rb") as fh:  # extension-less file: look for the DICM magic
        fh.seek(128)
        return fh.read(4) == b"DICM"


# ----------------------------------------------------------------------------------------------- DICOM
def _missing_decoder_message(path: Path, ds: object, cause: Exception) -> str:
    from pydicom.pixels import get_decoder

    uid = ds.file_meta.TransferSyntaxUID  # type: ignore[attr-defined]
    try:
        options = "; ".join(get_decoder(uid).missing_dependencies) or "none known to pydicom"
    except Exception:  # noqa: BLE001 - unknown syntax: pydicom has no decoder object at all
        options = "none known to pydicom"
    return (
        f"{path}: cannot decode DICOM pixel data with transfer syntax '{uid.name}' ({uid}): no installed "
        f"decoder supports it. Install one of: {options}. (pydicom: {cause})"
    )


def _stored_range(ds: object) -> tuple[float, float]:
    bits = int(getattr(ds, "BitsStored", getattr(ds, "BitsAllocated", 8)))
    if int(getattr(ds, "PixelRepresentation", 0)) == 1:
        return float(-(2 ** (bits - 1))), float(2 ** (bits - 1) - 1)
    return 0.0, float(2**bits - 1)


def read_dicom(path: str | Path) -> np.ndarray:
    """Decode a DICOM image to display-oriented float32 grayscale in [0, 1].

    Steps: pixel data (any transfer syntax an installed pydicom plugin decodes) -> modality LUT or rescale
    slope/intercept -> VOI LUT or window centre/width (first view) -> scale by the output range that step
    defines (for images without VOI, by the stored bit range, so an 8-bit image is divided by 255) ->
    inversion for MONOCHROME1 (or Presentation LUT Shape ``INVERSE``).  Colour images become luminance.
    The first frame of a multi-frame image is used.
    """
    import pydicom
    from pydicom.pixels import apply_modality_lut, apply_voi, apply_windowing

    path = Path(path)
    try:
        ds = pydicom.dcmread(path)
    except FileNotFoundError:
        raise ImageReadError(f"{path}: file not found") from None
    except Exception as exc:  # noqa: BLE001 - pydicom raises several types for broken files
        raise ImageReadError(f"{path}: not a readable DICOM file ({exc})") from exc
    if "PixelData" not in ds and "FloatPixelData" not in ds:
        raise ImageReadError(f"{path}: DICOM file has no pixel data")
    try:
        arr = ds.pixel_array
    except (NotImplementedError, RuntimeError) as exc:
        syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
        if syntax is not None and syntax.is_compressed:
            raise MissingDecoderError(_missing_decoder_message(path, ds, exc)) from exc
        raise ImageReadError(f"{path}: cannot decode DICOM pixels ({exc})") from exc
    except Exception as exc:  # noqa: BLE001 - truncated data etc.
        raise ImageReadError(f"{path}: cannot decode DICOM pixels ({exc})") from exc

    frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
    if frames > 1:
        arr = arr[0]
    samples = int(getattr(ds, "SamplesPerPixel", 1))
    if samples > 1:  # pydicom already converted YBR to RGB
        rgb = arr[..., :3].astype(np.float32)
        gray = rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        return np.clip(gray / float(2 ** int(ds.BitsStored) - 1), 0.0, 1.0).astype(np.float32)

    lo, hi = _stored_range(ds)
    if ds.get("ModalityLUTSequence"):
        arr = apply_modality_lut(arr, ds)
        lo, hi = 0.0, float(2 ** int(ds.ModalityLUTSequence[0].LUTDescriptor[2]) - 1)
    else:
        slope = float(ds.get("RescaleSlope", 1) or 1)
        intercept = float(ds.get("RescaleIntercept", 0) or 0)
        if slope != 1 or intercept != 0:
            arr = arr.astype(np.float64) * slope + intercept
            lo, hi = sorted((lo * slope + intercept, hi * slope + intercept))

    voi_seq = ds.get("VOILUTSequence")
    if voi_seq and voi_seq[0].get("LUTDescriptor") is not None and voi_seq[0].get("LUTData") is not None:
        arr = apply_voi(np.rint(arr).astype(np.int64), ds)
        lo, hi = 0.0, float(2 ** int(voi_seq[0].LUTDescriptor[2]) - 1)  # LUT output range (nominal depth)
    elif ds.get("WindowCenter") is not None and ds.get("WindowWidth") is not None:
        arr = apply_windowing(arr, ds)  # output spans the (rescaled) stored range [lo, hi]

    out = (np.asarray(arr, dtype=np.float64) - lo) / max(hi - lo, 1e-12)
    out = np.clip(out, 0.0, 1.0).astype(np.float32)
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).upper()
    inverse = str(ds.get("PresentationLUTShape", "")).upper() == "INVERSE"
    if (photometric == "MONOCHROME1") != inverse:
        out = 1.0 - out
    return out


# ----------------------------------------------------------------------------------------- PNG / JPG
def read_pil(path: str | Path) -> np.ndarray:
    """Decode a PNG/JPG (or any PIL-readable) image to float32 grayscale in [0, 1].

    8-bit modes are divided by 255; 16-bit PNGs (``I;16`` / ``I``) by 65535; RGB(A)/LA/P are converted to
    luminance (alpha ignored).
    """
    path = Path(path)
    try:
        with Image.open(path) as img:
            img.load()
            mode = img.mode
            if mode in ("I;16", "I;16B", "I;16L", "I;16N"):
                arr = np.asarray(img, dtype=np.uint16).astype(np.float32) / 65535.0
            elif mode == "I":
                raw = np.asarray(img, dtype=np.int64)
                scale = 65535.0 if raw.max(initial=0) > 255 or img.format == "PNG" else 255.0
                arr = raw.astype(np.float32) / scale
            elif mode == "F":
                arr = np.asarray(img, dtype=np.float32)
            elif mode == "L":
                arr = np.asarray(img, dtype=np.uint8).astype(np.float32) / 255.0
            elif mode == "1":
                arr = np.asarray(img, dtype=np.float32)
            else:  # RGB, RGBA, LA, P, CMYK, YCbCr ...
                rgb = np.asarray(img.convert("RGB"), dtype=np.float32)
                arr = (rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)) / 255.0
    except FileNotFoundError:
        raise ImageReadError(f"{path}: file not found") from None
    except ImageReadError:
        raise
    except Exception as exc:  # noqa: BLE001 - PIL raises many types for broken files
        raise ImageReadError(f"{path}: cannot decode image ({exc})") from exc
    return np.clip(arr, 0.0, 1.0).astype(np.float32)


def read_image(path: str | Path) -> np.ndarray:
    """Read any supported image (DICOM by suffix or DICM magic, else PIL) as float32 ``(H, W)`` in [0, 1]."""
    path = Path(path)
    if not path.exists():
        raise ImageReadError(f"{path}: file not found")
    return read_dicom(path) if _is_dicom(path) else read_pil(path)


def read_header(path: str | Path) -> ImageHeader:
    """Read an image's header only (fast); raise :class:`ImageReadError` naming the file when it is unusable."""
    import pydicom

    path = Path(path)
    if not path.exists():
        raise ImageReadError(f"{path}: file not found")
    if _is_dicom(path):
        try:
            ds = pydicom.dcmread(path, defer_size=256)
            rows, cols = int(ds.Rows), int(ds.Columns)
        except Exception as exc:  # noqa: BLE001
            raise ImageReadError(f"{path}: not a readable DICOM header ({exc})") from exc
        if "PixelData" not in ds:
            raise ImageReadError(f"{path}: DICOM file has no pixel data")
        detail = f"{ds.get('PhotometricInterpretation', '?')} {ds.get('BitsStored', '?')}-bit"
        return ImageHeader(str(path), "dicom", cols, rows, detail)
    try:
        with Image.open(path) as img:
            width, height = img.size
            fmt, mode = (img.format or "unknown").lower(), img.mode
    except Exception as exc:  # noqa: BLE001
        raise ImageReadError(f"{path}: not a readable image header ({exc})") from exc
    return ImageHeader(str(path), fmt, int(width), int(height), mode)


def resize_image(image: np.ndarray, size: int) -> np.ndarray:
    """Resize a float ``(H, W)`` image to ``(size, size)`` with bilinear (antialiased) interpolation."""
    if image.shape == (size, size):
        return image.astype(np.float32, copy=False)
    pil = Image.fromarray(np.ascontiguousarray(image, dtype=np.float32))
    return np.asarray(pil.resize((size, size), Image.Resampling.BILINEAR), dtype=np.float32)
