"""CLIP checkpoints: a folder with ``model.safetensors``, ``clip.json`` and the text tower's ``text/``.

- ``model.safetensors``: the open_clip model's state dict (image tower, text tower, logit scale);
- ``text/``: the Hugging Face config and tokenizer of the text tower (no weights: those are in the
  safetensors file), so a checkpoint loads without the encoder it was initialised from;
- ``clip.json``: format, :class:`ClipConfig`, text-tower identity, and free-form ``extra`` (training
  config, data fingerprint). Written last: a folder without it is an unfinished checkpoint.

Both files are written atomically (:mod:`medslip.atomic`).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from baselines.clip.model import ClipConfig, ClipModel, load_tokenizer
from medslip.atomic import atomic_path, write_text_atomic

FORMAT = "clip-baseline/1"
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "clip.json"
TEXT_DIR = "text"


def save_clip_checkpoint(model: ClipModel, path: str | Path, tokenizer, text_identity: str,
                         extra: dict[str, Any] | None = None) -> Path:
    """Write ``model`` (and its tokenizer / text config) to the folder ``path``."""
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    config_file = folder / CONFIG_FILE
    if config_file.exists():
        config_file.unlink()  # the folder is unfinished until the new clip.json lands
    text_dir = folder / TEXT_DIR
    if text_dir.exists():
        shutil.rmtree(text_dir)
    tokenizer.save_pretrained(str(text_dir))
    model.clip.text.config.save_pretrained(str(text_dir))
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.clip.state_dict().items()}
    with atomic_path(folder / WEIGHTS_FILE) as tmp:
        save_file(tensors, str(tmp), metadata={"format": FORMAT})
    meta = {"format": FORMAT, "config": model.config.to_dict(), "text_encoder": text_identity,
            "open_clip": model.config.open_clip_cfg(TEXT_DIR, False), "extra": extra or {}}
    write_text_atomic(config_file, json.dumps(meta, indent=2, default=str) + "\n")
    return folder


def read_clip_meta(path: str | Path) -> dict[str, Any]:
    """The ``clip.json`` of a checkpoint folder."""
    folder = Path(path)
    file = folder / CONFIG_FILE
    if not file.exists():
        raise FileNotFoundError(f"{folder}: no {CONFIG_FILE}; not a (finished) CLIP checkpoint folder "
                                "(the harness trains one: `train clip`)")
    meta = json.loads(file.read_text(encoding="utf-8"))
    if meta.get("format") != FORMAT:
        raise ValueError(f"{folder}: unknown checkpoint format {meta.get('format')!r} (expected {FORMAT})")
    return meta


def load_clip_checkpoint(path: str | Path, map_location: str | torch.device = "cpu"):
    """(model, tokenizer, meta) of a checkpoint folder; the state dict is loaded strictly."""
    folder = Path(path)
    if folder.is_file():
        folder = folder.parent
    meta = read_clip_meta(folder)
    config = ClipConfig.from_dict(meta["config"])
    model = ClipModel.create(config, folder / TEXT_DIR, text_pretrained=False)
    state = load_file(str(folder / WEIGHTS_FILE), device=str(map_location))
    model.clip.load_state_dict(state, strict=True)
    return model.to(map_location).eval(), load_tokenizer(folder / TEXT_DIR), meta


__all__ = ["CONFIG_FILE", "FORMAT", "load_clip_checkpoint", "read_clip_meta", "save_clip_checkpoint"]
