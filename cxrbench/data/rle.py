"""SIIM-ACR run-length encoding: relative starts, column-major pixel order.

The competition's RLE (``mask_functions.py``) reads ``start length`` pairs against a running position that
begins at 0 and advances by ``start + length`` after each run, over a flat buffer in column-major order
(image rows = y vary fastest).  So a decoded buffer is reshaped with ``order='F'`` to get image orientation.

``"-1"`` (optionally with surrounding spaces, as in ``train-rle.csv``) is the empty mask.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

__all__ = ["EMPTY_RLE", "RLEError", "is_empty_rle", "rle_check", "rle_decode", "rle_decode_union", "rle_encode"]

EMPTY_RLE = "-1"


class RLEError(ValueError):
    """A malformed run-length string."""


def is_empty_rle(rle: str | None) -> bool:
    """True for the empty-mask marker ``-1`` (spaces tolerated), an empty string or ``None``/NaN."""
    if rle is None or (isinstance(rle, float) and np.isnan(rle)):
        return True
    text = str(rle).strip()
    return text in ("", EMPTY_RLE)


def _pairs(rle: str) -> np.ndarray:
    """Parse an RLE string into an ``(n, 2)`` int64 array of (relative start, length); raise on bad syntax."""
    tokens = str(rle).split()
    try:
        numbers = np.array([int(t) for t in tokens], dtype=np.int64)
    except ValueError as exc:
        raise RLEError(f"non-integer token in RLE: {exc}") from None
    if numbers.size % 2:
        raise RLEError(f"odd number of RLE tokens ({numbers.size})")
    if (numbers < 0).any():
        raise RLEError("negative start or length in RLE")
    pairs = numbers.reshape(-1, 2)
    if (pairs[:, 1] == 0).any():
        raise RLEError("zero-length run in RLE")
    return pairs


def rle_check(rle: str | None, height: int = 1024, width: int = 1024) -> str | None:
    """Return a message describing what is wrong with ``rle``, or ``None`` when it is a valid relative RLE.

    Beyond syntax, the sum of all numbers must not exceed ``height * width`` (a violation usually means the
    string is an absolute RLE from another tool).
    """
    if is_empty_rle(rle):
        return None
    try:
        pairs = _pairs(str(rle))
    except RLEError as exc:
        return str(exc)
    total = int(pairs.sum())
    if total > height * width:
        return f"RLE runs past the end of a {height}x{width} frame (sum {total} > {height * width}); absolute RLE?"
    return None


def rle_decode(rle: str | None, height: int = 1024, width: int = 1024) -> np.ndarray:
    """Decode one relative, column-major RLE string into a boolean ``(height, width)`` mask (row = y)."""
    flat = np.zeros(height * width, dtype=bool)
    if not is_empty_rle(rle):
        pairs = _pairs(str(rle))
        ends = np.cumsum(pairs.sum(axis=1))
        starts = ends - pairs[:, 1]
        if ends.size and ends[-1] > flat.size:
            raise RLEError(f"RLE runs past the end of a {height}x{width} frame")
        # Mark run boundaries with +1/-1 and integrate: O(H*W) instead of a Python loop over runs.
        delta = np.zeros(flat.size + 1, dtype=np.int32)
        np.add.at(delta, starts, 1)
        np.add.at(delta, ends, -1)
        flat = np.cumsum(delta[:-1]) > 0
    return flat.reshape((height, width), order="F")


def rle_decode_union(rles: Iterable[str | None], height: int = 1024, width: int = 1024) -> np.ndarray:
    """Union (logical OR) of the masks of several RLE rows of one image; all-empty input gives an empty mask."""
    mask = np.zeros((height, width), dtype=bool)
    for rle in rles:
        if not is_empty_rle(rle):
            mask |= rle_decode(rle, height, width)
    return mask


def rle_encode(mask: np.ndarray, flush_last: bool = False) -> str:
    """Encode a ``(height, width)`` mask (row = y; nonzero = foreground) as a relative column-major RLE.

    Returns ``"-1"`` for an empty mask.  Like the official encoder, a run that reaches the very last pixel
    is dropped unless ``flush_last`` is true (``rle_decode(rle_encode(m))`` equals ``m`` whenever the last
    pixel is background, or always with ``flush_last=True``).
    """
    flat = np.asarray(mask).astype(bool).reshape(-1, order="F")
    padded = np.concatenate(([False], flat, [False]))
    changes = np.flatnonzero(padded[1:] != padded[:-1])
    starts, ends = changes[0::2], changes[1::2]
    if not flush_last and ends.size and ends[-1] == flat.size:
        starts, ends = starts[:-1], ends[:-1]
    if starts.size == 0:
        return EMPTY_RLE
    previous_end = np.concatenate(([0], ends[:-1]))
    rel = np.stack([starts - previous_end, ends - starts], axis=1).reshape(-1)
    return " ".join(str(int(v)) for v in rel)
