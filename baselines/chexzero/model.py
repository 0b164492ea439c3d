"""OpenAI CLIP checkpoints (``torch.save(model.state_dict())`` of the ``clip`` package) built as open_clip models.

The configuration is read from the state dict's shapes, as OpenAI's ``build_model`` does (heads = width // 64 in both
towers); a key that is absent falls back to the released ViT-B/32 value, so a damaged file still builds and the
strict load reports exactly what differs. Floating-point tensors are cast to float32 on load (the releases mix fp16
and fp32 tensors; the cast is exact).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Mapping

import torch
from torch import Tensor, nn

from baselines.state_dict import cast_floats, load_strict, read_state_dict, strip_prefixes, unwrap

_VISUAL_BLOCK = re.compile(r"^visual\.transformer\.resblocks\.(\d+)\.")
_TEXT_BLOCK = re.compile(r"^transformer\.resblocks\.(\d+)\.")


@dataclass(frozen=True)
class OpenAIClipConfig:
    """OpenAI ``build_model`` parameters of a ViT CLIP (names as in CheXzero's ``model.CLIP``)."""

    embed_dim: int = 512
    image_resolution: int = 224
    vision_layers: int = 12
    vision_width: int = 768
    vision_patch_size: int = 32
    context_length: int = 77
    vocab_size: int = 49408
    transformer_width: int = 512
    transformer_heads: int = 8
    transformer_layers: int = 12

    def to_dict(self) -> dict:
        return asdict(self)


#: The released CheXzero / PubMedCLIP ViT-B/32 configuration.
VIT_B32 = OpenAIClipConfig()


def _shape(shapes: Mapping[str, tuple], key: str, dim: int) -> int | None:
    shape = shapes.get(key)
    return int(shape[dim]) if shape is not None and len(shape) > dim else None


def infer_config(shapes: Mapping[str, tuple], default: OpenAIClipConfig = VIT_B32) -> OpenAIClipConfig:
    """The configuration of an OpenAI-layout ViT CLIP state dict, from its ``{key: shape}``."""
    d = default
    vision_width = _shape(shapes, "visual.conv1.weight", 0) or d.vision_width
    patch = _shape(shapes, "visual.conv1.weight", -1) or d.vision_patch_size
    tokens = _shape(shapes, "visual.positional_embedding", 0)
    grid = round((tokens - 1) ** 0.5) if tokens else d.image_resolution // d.vision_patch_size
    vision_layers = len({m.group(1) for k in shapes if (m := _VISUAL_BLOCK.match(k))}) or d.vision_layers
    text_width = _shape(shapes, "ln_final.weight", 0) or d.transformer_width
    text_layers = len({m.group(1) for k in shapes if (m := _TEXT_BLOCK.match(k))}) or d.transformer_layers
    return OpenAIClipConfig(
        embed_dim=_shape(shapes, "text_projection", 1) or d.embed_dim,
        image_resolution=patch * grid, vision_layers=vision_layers, vision_width=vision_width,
        vision_patch_size=patch, context_length=_shape(shapes, "positional_embedding", 0) or d.context_length,
        vocab_size=_shape(shapes, "token_embedding.weight", 0) or d.vocab_size, transformer_width=text_width,
        transformer_heads=max(1, text_width // 64), transformer_layers=text_layers)


def build_open_clip(config: OpenAIClipConfig) -> nn.Module:
    """open_clip ``CLIP(quick_gelu=True)`` with OpenAI's key names and shapes for ``config``."""
    from open_clip.model import CLIP

    c = config
    return CLIP(embed_dim=c.embed_dim, quick_gelu=True,
                vision_cfg=dict(image_size=c.image_resolution, layers=c.vision_layers, width=c.vision_width,
                                patch_size=c.vision_patch_size, head_width=64),
                text_cfg=dict(context_length=c.context_length, vocab_size=c.vocab_size, width=c.transformer_width,
                              heads=c.transformer_heads, layers=c.transformer_layers))


def prepare_state_dict(obj: Mapping) -> dict[str, Tensor]:
    """A loaded checkpoint object -> the OpenAI-layout state dict in float32 (wrappers and ``module.`` removed)."""
    return cast_floats(strip_prefixes(unwrap(obj), ("module.",)))


def load_openai_clip(state_dict: Mapping[str, Tensor], source: str | None = None,
                     default: OpenAIClipConfig = VIT_B32) -> tuple[nn.Module, OpenAIClipConfig]:
    """(open_clip model in eval mode, its configuration) from an OpenAI-layout state dict, loaded strictly.

    Meta tensors (a key manifest) build the model on the meta device, so the released layout is checked
    without its weights.
    """
    sd = prepare_state_dict(state_dict)
    config = infer_config({k: tuple(v.shape) for k, v in sd.items()}, default)
    meta = any(v.is_meta for v in sd.values())
    with torch.device("meta") if meta else torch.device("cpu"):
        model = build_open_clip(config)
    load_strict(model, sd, source=source)
    return model.eval(), config


def load_openai_clip_file(path: str | Path, default: OpenAIClipConfig = VIT_B32) -> tuple[nn.Module, OpenAIClipConfig]:
    """The user path: read a released file safely, then :func:`load_openai_clip`."""
    return load_openai_clip(read_state_dict(path), source=str(path), default=default)


def random_openai_clip(config: OpenAIClipConfig, seed: int = 0) -> nn.Module:
    """Random weights of ``config`` (fixed seed: every call gives the same model)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build_open_clip(config).eval()


__all__ = ["OpenAIClipConfig", "VIT_B32", "build_open_clip", "infer_config", "load_openai_clip",
           "load_openai_clip_file", "prepare_state_dict", "random_openai_clip"]
