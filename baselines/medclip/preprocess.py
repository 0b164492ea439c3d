"""MedCLIP's image preprocessing, both published paths, without its transformers-4.24-only classes.

- :func:`processor_pixel_values` is ``MedCLIPProcessor()(images=...)['pixel_values']`` (the README path):
  pad to a square black canvas of side ``max(224, w, h)`` (image pasted at the centre, offsets rounded
  down), PIL bicubic resize to 224 x 224, centre crop 224 (a no-op), ``* (1 / 255)`` and
  ``(x - IMG_MEAN) / IMG_STD`` in float32;
- :func:`zeroshot_dataset_pixel_values` is ``ZeroShotImageDataset``'s transform: the same padding, then
  torchvision ``Resize((224, 224))`` (bilinear on the PIL image), ``ToTensor`` and ``Normalize``.

Both take grayscale images (PIL mode ``L`` or uint8 ``H x W`` arrays / tensors) and return N x 1 x 224 x 224
float32 tensors; the model repeats the channel to three. (``dataset.py`` itself imports
``CLIPFeatureExtractor``, which transformers 5 no longer has.)
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from PIL import Image
from torch import Tensor

IMG_SIZE = 224
IMG_MEAN = 0.5862785803043838
IMG_STD = 0.27950088968644304


def _as_pil(image) -> Image.Image:
    if isinstance(image, Image.Image):
        return image.convert("L") if image.mode != "L" else image
    array = image.numpy() if isinstance(image, Tensor) else np.asarray(image)
    if array.dtype != np.uint8 or array.ndim != 2:
        raise ValueError(f"MedCLIP preprocessing takes uint8 grayscale H x W images, got {array.dtype} "
                         f"{tuple(array.shape)}")
    return Image.fromarray(array, mode="L")


def pad_to_square(image, min_size: int = IMG_SIZE) -> Image.Image:
    """The published padding: a black ``L`` canvas of side ``max(min_size, w, h)``, the image pasted at
    ``(int((side - w) / 2), int((side - h) / 2))``."""
    img = _as_pil(image)
    w, h = img.size
    side = max(min_size, w, h)
    canvas = Image.new("L", (side, side), 0)
    canvas.paste(img, (int((side - w) / 2), int((side - h) / 2)))
    return canvas


def _normalise(array: np.ndarray) -> Tensor:
    unit = array.astype(np.float32) * np.float32(1 / 255)  # the feature extractor's rescale (bit-exact)
    return torch.from_numpy((unit - np.float32(IMG_MEAN)) / np.float32(IMG_STD))


def processor_pixel_values(images: Sequence, size: int = IMG_SIZE) -> Tensor:
    """``MedCLIPProcessor`` pixel values (N x 1 x size x size)."""
    out = []
    for image in images:
        padded = pad_to_square(image, size).resize((size, size), Image.Resampling.BICUBIC)
        out.append(_normalise(np.asarray(padded))[None])
    return torch.stack(out)


def zeroshot_dataset_pixel_values(images: Sequence, size: int = IMG_SIZE) -> Tensor:
    """``ZeroShotImageDataset`` pixel values (N x 1 x size x size)."""
    from torchvision import transforms

    transform = transforms.Compose([transforms.Resize((size, size)), transforms.ToTensor(),
                                    transforms.Normalize(mean=[IMG_MEAN], std=[IMG_STD])])
    return torch.stack([transform(pad_to_square(image, size)) for image in images])


__all__ = ["IMG_MEAN", "IMG_SIZE", "IMG_STD", "pad_to_square", "processor_pixel_values",
           "zeroshot_dataset_pixel_values"]
