"""A ViT image tower as an encoder for fine-tuning: its last block's patch tokens on their grid.

A ViT has no feature pyramid, so the trunk returns one map (B x D x h x w, stride = patch size); fine-tuning
adds :func:`random_grid_block` (a randomly initialised 3x3 stride-2 conv block, D -> 2 D channels) in place of a
ResNet's layer4; a linear probe pools the grid. Segmentation needs a pyramid and is not offered.

The trunks map their input by a fixed per-channel ``x * scale + shift`` into the tower's own normalisation
(:func:`renormalisation` computes it from the caller's mean / std and the tower's).
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn


class _Renormalised(nn.Module):
    def __init__(self, scale: Tensor, shift: Tensor) -> None:
        super().__init__()
        self.register_buffer("scale", scale.reshape(1, -1, 1, 1).float(), persistent=False)
        self.register_buffer("shift", shift.reshape(1, -1, 1, 1).float(), persistent=False)

    @staticmethod
    def grid(tokens: Tensor) -> Tensor:
        """B x N x D patch tokens -> B x D x h x w (square grid)."""
        side = int(round(tokens.shape[1] ** 0.5))
        return tokens.transpose(1, 2).reshape(tokens.shape[0], tokens.shape[2], side, side)


class OpenClipViTGrid(_Renormalised):
    """open_clip ``VisionTransformer`` (a copy): patch tokens after ``ln_post``, without the class token."""

    def __init__(self, visual: nn.Module, scale: Tensor, shift: Tensor) -> None:
        super().__init__(scale, shift)
        self.visual = copy.deepcopy(visual)
        self.visual.output_tokens = True

    def forward(self, x: Tensor) -> list[Tensor]:
        _, tokens = self.visual(x * self.scale + self.shift)
        return [self.grid(tokens)]


class TimmViTGrid(_Renormalised):
    """timm ``VisionTransformer`` (a copy): ``forward_features`` tokens without the prefix (class) tokens."""

    def __init__(self, trunk: nn.Module, scale: Tensor, shift: Tensor) -> None:
        super().__init__(scale, shift)
        self.trunk = copy.deepcopy(trunk)

    def forward(self, x: Tensor) -> list[Tensor]:
        tokens = self.trunk.forward_features(x * self.scale + self.shift)
        return [self.grid(tokens[:, getattr(self.trunk, "num_prefix_tokens", 1):])]


def random_grid_block(width: int) -> nn.Sequential:
    """The fine-tuning head's random block on a ViT grid: 3x3 conv, stride 2, ``width`` -> 2 ``width``, BN, ReLU."""
    return nn.Sequential(nn.Conv2d(width, 2 * width, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(2 * width),
                         nn.ReLU(inplace=True))


def renormalisation(from_mean, from_std, to_mean, to_std, channels: int = 3) -> tuple[Tensor, Tensor]:
    """(scale, shift) taking images normalised with ``from_*`` to images normalised with ``to_*`` (0-1 scale)."""
    def vec(v):
        return torch.as_tensor(v, dtype=torch.float32).expand(channels)

    fm, fs, tm, ts = vec(from_mean), vec(from_std), vec(to_mean), vec(to_std)
    return fs / ts, (fm - tm) / ts


__all__ = ["OpenClipViTGrid", "TimmViTGrid", "random_grid_block", "renormalisation"]
