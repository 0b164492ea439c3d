"""Image transforms for pre-training and evaluation, on tensors, deterministic per sample.

Every random choice uses the ``torch.Generator`` passed in, so a sample's augmentation depends only
on (seed, epoch, index): runs resume exactly and do not depend on the number of data workers.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
import torchvision.transforms.v2.functional as TF
from torch import Tensor
from torchvision.transforms import InterpolationMode

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

#: Operations of the published RandAugment variant (2 ops at magnitude 7 of 10).
RANDAUG_OPS = ("identity", "autocontrast", "equalize", "brightness", "sharpness",
               "shear_x", "shear_y", "translate_x", "translate_y", "rotate")


def to_unit_tensor(image) -> Tensor:
    """uint8 / float array (H x W) or tensor -> float32 tensor 1 x H x W in [0, 1]."""
    if isinstance(image, np.ndarray):
        image = np.array(image)  # a private, writable copy (sources may be read-only memory maps)
    t = torch.as_tensor(image)
    if t.dtype == torch.uint8:
        t = t.float() / 255.0
    t = t.float()
    if t.ndim == 2:
        t = t.unsqueeze(0)
    return t.clamp_(0.0, 1.0)


def normalize(image: Tensor) -> Tensor:
    """1 x H x W in [0, 1] -> 3 x H x W normalised with the ImageNet statistics (channel copy)."""
    rgb = image.expand(3, *image.shape[-2:])
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    return (rgb - mean) / std


def resize(image: Tensor, size: int) -> Tensor:
    """Resize 1 x H x W to size x size (bilinear, antialiased)."""
    if image.shape[-2:] == (size, size):
        return image
    return F.interpolate(image.unsqueeze(0), size=(size, size), mode="bilinear", antialias=True,
                         align_corners=False).squeeze(0)


def _uniform(g: torch.Generator, low: float, high: float) -> float:
    return low + (high - low) * torch.rand((), generator=g).item()


def random_resized_crop(image: Tensor, size: int, scale: tuple[float, float], g: torch.Generator,
                        ratio: tuple[float, float] = (3 / 4, 4 / 3)) -> Tensor:
    """torchvision's RandomResizedCrop sampling rule, with an explicit generator (bicubic)."""
    height, width = image.shape[-2:]
    area = height * width
    for _ in range(10):
        target = area * _uniform(g, *scale)
        aspect = math.exp(_uniform(g, math.log(ratio[0]), math.log(ratio[1])))
        w = int(round(math.sqrt(target * aspect)))
        h = int(round(math.sqrt(target / aspect)))
        if 0 < w <= width and 0 < h <= height:
            top = int(torch.randint(0, height - h + 1, (), generator=g))
            left = int(torch.randint(0, width - w + 1, (), generator=g))
            break
    else:  # central crop fallback
        h, w = height, width
        top = left = 0
    return TF.resized_crop(image, top, left, h, w, [size, size], interpolation=InterpolationMode.BICUBIC,
                           antialias=True).clamp_(0.0, 1.0)


def _apply_op(image: Tensor, op: str, magnitude: float, g: torch.Generator) -> Tensor:
    sign = 1.0 if torch.rand((), generator=g).item() < 0.5 else -1.0
    level = magnitude / 10.0
    size = image.shape[-1]
    if op == "identity":
        return image
    if op == "autocontrast":
        return TF.autocontrast(image)
    if op == "equalize":
        return TF.equalize((image * 255).to(torch.uint8)).float() / 255.0
    if op == "brightness":
        return TF.adjust_brightness(image, 1.0 + sign * 0.9 * level)
    if op == "sharpness":
        return TF.adjust_sharpness(image, 1.0 + sign * 0.9 * level)
    if op in ("shear_x", "shear_y"):
        angle = math.degrees(math.atan(sign * 0.3 * level))
        shear = [angle, 0.0] if op == "shear_x" else [0.0, angle]
        return TF.affine(image, angle=0.0, translate=[0, 0], scale=1.0, shear=shear)
    if op in ("translate_x", "translate_y"):
        shift = int(sign * 0.3 * level * size)
        translate = [shift, 0] if op == "translate_x" else [0, shift]
        return TF.affine(image, angle=0.0, translate=translate, scale=1.0, shear=[0.0, 0.0])
    if op == "rotate":
        return TF.rotate(image, sign * 30.0 * level)
    raise ValueError(f"unknown augmentation {op!r}")


def rand_augment(image: Tensor, g: torch.Generator, num_ops: int = 2, magnitude: float = 7.0) -> Tensor:
    for _ in range(num_ops):
        op = RANDAUG_OPS[int(torch.randint(0, len(RANDAUG_OPS), (), generator=g))]
        image = _apply_op(image, op, magnitude, g).clamp_(0.0, 1.0)
    return image


def train_transform(image, size: int, policy: str, g: torch.Generator) -> Tensor:
    """Augment one grayscale image and return a normalised 3 x size x size tensor.

    Policies: ``paper`` (RandomResizedCrop scale 0.2-1 bicubic, horizontal flip, RandAugment 2 ops
    at magnitude 7 from the published list), ``light`` (crop scale 0.7-1, small rotation), ``none``.
    """
    x = to_unit_tensor(image)
    if policy == "paper":
        x = random_resized_crop(x, size, (0.2, 1.0), g)
        if torch.rand((), generator=g).item() < 0.5:
            x = x.flip(-1)
        x = rand_augment(x, g)
    elif policy == "light":
        x = random_resized_crop(x, size, (0.7, 1.0), g)
        x = TF.rotate(x, _uniform(g, -5.0, 5.0))
    elif policy == "none":
        x = resize(x, size)
    else:
        raise ValueError(f"unknown augmentation policy {policy!r} (paper, light, none)")
    return normalize(x)


def eval_transform(image, size: int) -> Tensor:
    """Resize to size x size, channel copy, ImageNet normalisation (the published test transform)."""
    return normalize(resize(to_unit_tensor(image), size))


def normalize_batch(pixels: np.ndarray) -> Tensor:
    """uint8 N x S x S -> float32 N x 3 x S x S: :func:`eval_transform` of each image at its own size (no
    resize), for a whole batch, bitwise equal. Each channel is written in place from the one grey plane: about
    6 times the per-image transform at 224 px, where broadcasting the three channels at once was slower than it
    (memory traffic)."""
    n, height, width = pixels.shape
    unit = torch.from_numpy(np.ascontiguousarray(pixels)).float().div_(255.0)
    out = torch.empty(n, 3, height, width)
    for c, (mean, std) in enumerate(zip(torch.tensor(IMAGENET_MEAN), torch.tensor(IMAGENET_STD))):
        torch.sub(unit, mean, out=out[:, c]).div_(std)
    return out
