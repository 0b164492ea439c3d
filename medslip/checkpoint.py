"""Checkpoints: our safetensors format, and the published ``.pth`` format.

Our format is a folder with two files:

- ``model.safetensors``: the state dict (tied parameters stored once) plus the book embeddings
  under ``book.pathology`` / ``book.anatomy``, so the checkpoint runs without its text encoder;
- ``medslip.json``: the model config, the book texts, the text-encoder identity, the vocabularies.

The published checkpoint is a ``torch.save`` dict whose ``"model"`` entry is the state dict (keys
may carry DistributedDataParallel's ``module.`` prefix). It is read with ``weights_only=True``,
never unpickling arbitrary objects, and loaded strictly; a mismatch raises
:class:`CheckpointMismatch` listing missing, unexpected and mis-shaped keys.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Mapping

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import Tensor, nn

from medslip.atomic import atomic_path, write_text_atomic
from medslip.config import MeDSLIPConfig
from medslip.model import MeDSLIP
from medslip.vocab import ANATOMIES, OBSERVATIONS

FORMAT = "medslip-checkpoint/1"
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "medslip.json"


class CheckpointMismatch(RuntimeError):
    """A state dict does not match the model: the message lists every differing key."""

    def __init__(self, missing: list[str], unexpected: list[str], misshaped: list[tuple[str, tuple, tuple]]):
        self.missing, self.unexpected, self.misshaped = missing, unexpected, misshaped
        lines = ["state dict does not match the model:"]
        if missing:
            lines.append(f"  missing keys ({len(missing)}):")
            lines += [f"    - {k}" for k in missing]
        if unexpected:
            lines.append(f"  unexpected keys ({len(unexpected)}):")
            lines += [f"    - {k}" for k in unexpected]
        if misshaped:
            lines.append(f"  mis-shaped keys ({len(misshaped)}):")
            lines += [f"    - {k}: checkpoint {list(got)} vs model {list(want)}" for k, got, want in misshaped]
        super().__init__("\n".join(lines))


def strip_prefix(state_dict: Mapping[str, Tensor], prefix: str = "module.") -> dict[str, Tensor]:
    """Remove a DistributedDataParallel-style prefix from every key that has it."""
    return {k[len(prefix):] if k.startswith(prefix) else k: v for k, v in state_dict.items()}


def load_state_dict_strict(model: nn.Module, state_dict: Mapping[str, Tensor]) -> None:
    """Load strictly, raising :class:`CheckpointMismatch` with a readable list on any difference."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(own))
    misshaped = [
        (k, tuple(state_dict[k].shape), tuple(own[k].shape))
        for k in own
        if k in state_dict and tuple(state_dict[k].shape) != tuple(own[k].shape)
    ]
    if missing or unexpected or misshaped:
        raise CheckpointMismatch(missing, unexpected, misshaped)
    model.load_state_dict(state_dict, strict=True)


_BLOCK = re.compile(r"^res_features\.6\.(\d+)\.")
_LAYER = re.compile(r"^decoder_pathology\.layers\.(\d+)\.")


def infer_config(state_dict: Mapping[str, Tensor], **overrides: Any) -> MeDSLIPConfig:
    """Recover the MeDSLIP configuration from a (published) state dict's keys and shapes."""
    sd = state_dict
    try:
        bottleneck = any(k.startswith("res_features.4.0.conv3.") for k in sd)
        layer3_blocks = 1 + max(int(m.group(1)) for k in sd if (m := _BLOCK.match(k)))
        num_layers = 1 + max(int(m.group(1)) for k in sd if (m := _LAYER.match(k)))
        d_model, text_width = sd["pathology_embedding_layer.weight"].shape
        dim_feedforward = sd["decoder_pathology.layers.0.linear1.weight"].shape[0]
        num_classes = sd["classifier_pathology.weight"].shape[0]
    except (KeyError, ValueError) as exc:
        raise ValueError(f"not a MeDSLIP state dict (cannot infer its configuration: {exc})") from exc
    if bottleneck:
        backbone = "resnet50"
    else:
        backbone = "resnet34" if layer3_blocks == 6 else "resnet18"
    params = dict(
        backbone=backbone,
        d_model=int(d_model),
        num_layers=num_layers,
        dim_feedforward=int(dim_feedforward),
        text_width=int(text_width),
        num_classes=int(num_classes),
    )
    params.update(overrides)
    return MeDSLIPConfig(**params)


def _tied_groups(model: nn.Module) -> dict[str, str]:
    """Map each aliased state-dict key to the first key sharing its storage."""
    seen: dict[tuple[int, tuple], str] = {}
    alias: dict[str, str] = {}
    for key, tensor in model.state_dict(keep_vars=True).items():
        ident = (tensor.data_ptr(), tuple(tensor.shape))
        if tensor.numel() and ident in seen:
            alias[key] = seen[ident]
        else:
            seen[ident] = key
    return alias


def save_checkpoint(
    model: MeDSLIP,
    path: str | Path,
    pathology_texts: list[str] | None = None,
    anatomy_texts: list[str] | None = None,
    text_encoder: str | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write ``model`` to the folder ``path`` in our format (both files written atomically)."""
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    alias = _tied_groups(model)
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items() if k not in alias}
    tensors["book.pathology"] = model.pathology_book.detach().cpu().contiguous()
    tensors["book.anatomy"] = model.anatomy_book.detach().cpu().contiguous()
    meta = {
        "format": FORMAT,
        "config": model.config.to_dict(),
        "tied": alias,
        "text_encoder": text_encoder,
        "books": {"pathology": pathology_texts, "anatomy": anatomy_texts},
        "vocabulary": {"observations": list(OBSERVATIONS), "anatomies": list(ANATOMIES)},
        "extra": extra or {},
    }
    with atomic_path(folder / WEIGHTS_FILE) as tmp:
        save_file(tensors, str(tmp), metadata={"format": FORMAT})
    write_text_atomic(folder / CONFIG_FILE, json.dumps(meta, indent=2) + "\n")
    return folder


def read_checkpoint_meta(path: str | Path) -> dict[str, Any]:
    """The ``medslip.json`` of one of our checkpoints."""
    return json.loads((Path(path) / CONFIG_FILE).read_text(encoding="utf-8"))


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu",
                    model_class: type[MeDSLIP] = MeDSLIP) -> MeDSLIP:
    """Load one of our checkpoints (a folder, or its ``model.safetensors``) into ``model_class``."""
    folder = Path(path)
    if folder.is_file():
        folder = folder.parent
    meta = read_checkpoint_meta(folder)
    if meta.get("format") != FORMAT:
        raise ValueError(f"{folder}: unknown checkpoint format {meta.get('format')!r} (expected {FORMAT})")
    config = MeDSLIPConfig.from_dict(meta["config"])
    tensors: dict[str, Tensor] = {}
    with safe_open(str(folder / WEIGHTS_FILE), framework="pt", device=str(map_location)) as handle:
        for key in handle.keys():
            tensors[key] = handle.get_tensor(key)
    books = tensors.pop("book.pathology"), tensors.pop("book.anatomy")
    for key, source in meta.get("tied", {}).items():
        tensors[key] = tensors[source]
    model = model_class(config)
    load_state_dict_strict(model, tensors)
    model.set_books(*books)
    return model.to(map_location)


def read_published_state_dict(path: str | Path) -> dict[str, Tensor]:
    """The state dict of a published ``.pth`` checkpoint (``{"model": ...}``), ``module.`` stripped."""
    obj = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(obj, Mapping) and "model" in obj and isinstance(obj["model"], Mapping):
        obj = obj["model"]
    if not isinstance(obj, Mapping) or not all(isinstance(v, Tensor) for v in obj.values()):
        raise ValueError(f"{path}: expected a state dict or a dict with a 'model' state dict")
    return strip_prefix(dict(obj))


def load_published(
    path: str | Path,
    pathology_book: Tensor | None = None,
    anatomy_book: Tensor | None = None,
    config: MeDSLIPConfig | None = None,
) -> MeDSLIP:
    """Load a published MeDSLIP ``.pth`` strictly into the matching configuration.

    The books are not in the published checkpoint: pass the embeddings of the description file it
    was trained with (see :func:`medslip.books.load_pathology_book` and :func:`medslip.books.encode_books`).
    """
    state_dict = read_published_state_dict(path)
    config = config or infer_config(state_dict)
    model = MeDSLIP(config)
    load_state_dict_strict(model, state_dict)
    model.set_books(pathology_book, anatomy_book)
    return model
