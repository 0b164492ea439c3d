"""SIIM relative, column-major RLE."""

from __future__ import annotations

import numpy as np
import pytest

from cxrbench.data.rle import RLEError, is_empty_rle, rle_check, rle_decode, rle_decode_union, rle_encode


def test_decode_is_relative_and_column_major() -> None:
    # runs: absolute 2..3 (len 2), then skip 3 -> absolute 7..7 (len 1); column-major in a 4x3 frame
    mask = rle_decode("2 2 3 1", height=4, width=3)
    expected = np.zeros(12, bool)
    expected[[2, 3, 7]] = True
    assert np.array_equal(mask, expected.reshape((4, 3), order="F"))
    assert mask[2, 0] and mask[3, 0] and mask[3, 1] and mask.sum() == 3


def test_empty_markers() -> None:
    for value in ("-1", " -1", "", None, float("nan")):
        assert is_empty_rle(value)
        assert not rle_decode(value, 4, 4).any()


def test_round_trip_and_official_last_pixel_quirk() -> None:
    rng = np.random.default_rng(0)
    mask = rng.random((32, 32)) > 0.7
    mask[-1, -1] = False
    assert np.array_equal(rle_decode(rle_encode(mask), 32, 32), mask)
    mask[-1, -1] = True  # a run reaching the last pixel is dropped unless flushed
    assert not rle_decode(rle_encode(mask), 32, 32)[-1, -1]
    assert np.array_equal(rle_decode(rle_encode(mask, flush_last=True), 32, 32), mask)
    assert rle_encode(np.zeros((4, 4))) == "-1"


def test_union_and_validation() -> None:
    a, b = rle_decode("0 2", 4, 4), rle_decode("5 1", 4, 4)
    assert np.array_equal(rle_decode_union(["0 2", " 5 1", "-1"], 4, 4), a | b)
    assert rle_check("1 2 3", 4, 4) == "odd number of RLE tokens (3)"
    assert "non-integer" in rle_check("1 x", 4, 4)
    assert "absolute RLE" in rle_check("10 10", 4, 4)
    assert rle_check(" 3 2 ", 4, 4) is None
    with pytest.raises(RLEError):
        rle_decode("10 10", 4, 4)
