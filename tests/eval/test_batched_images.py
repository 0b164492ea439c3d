"""Issue 19: evaluation batches are normalised as one tensor op, bitwise equal to the per-image transform."""

from __future__ import annotations

import numpy as np
import torch

from medslip.augment import eval_transform, normalize_batch


def test_a_batch_equals_the_per_image_eval_transform_bitwise():
    pixels = np.random.default_rng(0).integers(0, 256, size=(7, 48, 48), dtype=np.uint8)
    pixels[0] = 0
    pixels[1] = 255
    batch = normalize_batch(pixels)
    reference = torch.stack([eval_transform(p, 48) for p in pixels])
    assert batch.shape == (7, 3, 48, 48) and batch.dtype == torch.float32
    assert torch.equal(batch, reference)
    # a read-only memory map, as the cache hands out, is fine too
    view = pixels.copy()
    view.setflags(write=False)
    assert torch.equal(normalize_batch(view[[3, 1]]), reference[[3, 1]])
