"""SingleStreamMeDSLIP checkpoints: the MeDSLIP folder format (``model.safetensors`` + ``medslip.json``), single-stream.

Writing reuses :func:`medslip.checkpoint.save_checkpoint` unchanged (atomic writes, books stored
beside the weights); the config it records carries ``extra["architecture"] = "single-stream"``, which is
how :func:`load_single_stream_checkpoint` (and a reader) tells the two apart.
"""

from __future__ import annotations

from pathlib import Path

import torch

from baselines.single_stream.model import ARCHITECTURE, SingleStreamMeDSLIP
from medslip.checkpoint import CONFIG_FILE, FORMAT, load_checkpoint, read_checkpoint_meta


def is_single_stream_checkpoint(path: str | Path) -> bool:
    """Whether the checkpoint folder ``path`` holds a single-stream model."""
    folder = Path(path)
    if folder.is_file():
        folder = folder.parent
    if not (folder / CONFIG_FILE).exists():
        return False
    meta = read_checkpoint_meta(folder)
    return (meta.get("config", {}).get("extra") or {}).get("architecture") == ARCHITECTURE


def load_single_stream_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> SingleStreamMeDSLIP:
    """Load a SingleStreamMeDSLIP checkpoint folder (or its ``model.safetensors``) strictly."""
    folder = Path(path)
    if folder.is_file():
        folder = folder.parent
    if not (folder / CONFIG_FILE).exists():
        raise FileNotFoundError(f"{folder}: no {CONFIG_FILE}; not a checkpoint folder (train one with "
                                "the harness trains one: `train medslip-single-stream`)")
    meta = read_checkpoint_meta(folder)
    if meta.get("format") != FORMAT:
        raise ValueError(f"{folder}: unknown checkpoint format {meta.get('format')!r} (expected {FORMAT})")
    if not is_single_stream_checkpoint(folder):
        raise ValueError(f"{folder}: a dual-stream MeDSLIP checkpoint, not a single-stream SingleStreamMeDSLIP one "
                         "(evaluate it with --model medslip)")
    return load_checkpoint(folder, map_location, model_class=SingleStreamMeDSLIP)


__all__ = ["is_single_stream_checkpoint", "load_single_stream_checkpoint"]
