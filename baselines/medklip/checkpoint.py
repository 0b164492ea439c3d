"""The released MedKLIP checkpoint (``checkpoint_final.pth``).

It is a ``torch.save`` dict whose ``"model"`` entry is the module's state dict, every key prefixed with
``module.`` (saved from ``nn.DataParallel``); the ``optimizer``, ``lr_scheduler``, ``config`` and ``epoch``
entries are ignored. The file is read with ``torch.load(weights_only=True)``: no arbitrary object is ever
unpickled (a file that needs more than tensors and plain containers is refused). Loading is strict; a
mismatch raises :class:`baselines.state_dict.StateDictMismatch` with the differing keys grouped by prefix.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import Tensor

from baselines.medklip.model import MedKLIP, MedKLIPConfig
from baselines.state_dict import cast_floats, load_strict

PREFIX = "module."
_LAYER = re.compile(r"^decoder\.layers\.(\d+)\.")


def unwrap_state_dict(obj: Any, what: str = "checkpoint") -> dict[str, Tensor]:
    """The state dict of a loaded checkpoint object: its ``"model"`` entry (or the object itself), with
    the DataParallel ``module.`` prefix removed."""
    if isinstance(obj, Mapping) and isinstance(obj.get("model"), Mapping):
        obj = obj["model"]
    if not isinstance(obj, Mapping) or not obj or not all(isinstance(v, Tensor) for v in obj.values()):
        raise ValueError(f"{what}: expected a MedKLIP checkpoint (a dict with a 'model' state dict)")
    return {k[len(PREFIX):] if k.startswith(PREFIX) else k: v for k, v in obj.items()}


def read_released(path: str | Path) -> dict[str, Tensor]:
    """The state dict of a released ``checkpoint_final.pth`` (``weights_only=True``, ``module.`` stripped)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"MedKLIP checkpoint {path} does not exist")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # an unpickling error names the offending global; keep it on one line
        raise ValueError(f"{path}: not readable as a weights-only torch checkpoint "
                         f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") from exc
    return unwrap_state_dict(obj, str(path))


def infer_config(state_dict: Mapping[str, Any]) -> MedKLIPConfig:
    """The configuration a (released) state dict was made with, from its keys and shapes (tensors or
    shape lists, as in a key manifest)."""
    def shape(key: str) -> tuple[int, ...]:
        value = state_dict[key]
        return tuple(value.shape) if hasattr(value, "shape") else tuple(value)

    try:
        d_model, text_width = shape("disease_embedding_layer.weight")
        num_layers = 1 + max(int(m.group(1)) for k in state_dict if (m := _LAYER.match(k)))
        dim_feedforward = shape("decoder.layers.0.linear1.weight")[0]
        num_classes = shape("classifier.weight")[0]
        channels = shape("res_l1.weight")[0]
    except (KeyError, ValueError) as exc:
        raise ValueError(f"not a MedKLIP state dict (cannot read its configuration: {exc})") from exc
    backbone = "resnet50" if channels == 1024 else "resnet18"
    return MedKLIPConfig(backbone=backbone, d_model=int(d_model), num_layers=num_layers,
                         dim_feedforward=int(dim_feedforward), text_width=int(text_width),
                         num_classes=int(num_classes))


def load_state_dict_into_model(state_dict: Mapping[str, Tensor], book: Tensor | None = None,
                               config: MedKLIPConfig | None = None, what: str = "MedKLIP state dict",
                               num_heads: int = 4) -> MedKLIP:
    """Build the MedKLIP of ``state_dict``'s configuration (H is not visible in the weights: ``num_heads``,
    4 in the released file) and load it strictly; floating values are cast to float32."""
    if config is None:
        config = infer_config(state_dict)
        config.num_heads = num_heads
    if book is not None:
        config.num_queries = int(book.shape[0])
    model = MedKLIP(config, book)
    load_strict(model, cast_floats(state_dict), source=what)
    return model.eval()


def load_released(path: str | Path, book: Tensor | None = None, config: MedKLIPConfig | None = None) -> MedKLIP:
    """Load a released MedKLIP ``.pth`` strictly, with the query ``book`` (its description file encoded by
    its text encoder; see :mod:`baselines.medklip.book`)."""
    return load_state_dict_into_model(read_released(path), book, config, what=str(path))


__all__ = ["infer_config", "load_released", "load_state_dict_into_model", "read_released", "unwrap_state_dict",
           "verify_file"]


def verify_file(path: str | Path) -> dict[str, Any]:
    """Check a MedKLIP file against the module of its configuration without loading the weights (the module
    is built on the meta device). Returns a summary; a mismatch raises
    :class:`baselines.state_dict.StateDictMismatch` (one message, keys grouped by prefix)."""
    from baselines.state_dict import check_keys

    state_dict = read_released(path)
    config = infer_config(state_dict)
    with torch.device("meta"):
        model = MedKLIP(config)
    check_keys(model.state_dict(), state_dict, source=str(path))
    return {"keys": len(state_dict), "config": config.to_dict()}
