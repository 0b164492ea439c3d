"""Reading a MedCLIP checkpoint and loading it strictly, whatever the installed transformers calls Swin's
parameters.

The released files (``medclip-pretrained.zip`` / ``medclip-vit-pretrained.zip``, each holding
``pytorch_model.bin``) are raw ``MedCLIPModel.state_dict()`` dicts saved under transformers 4.2x: no wrapper,
no ``module.`` prefix, 521 (ResNet-50) / 434 (ViT) keys. The user path is :func:`read_state_dict` (a file or a
folder; ``torch.load(weights_only=True)`` or safetensors) -> :func:`prepare_state_dict` (unwrap, cast
floating-point tensors to float32) -> :func:`adapt_to_module` (the Swin renames, legacy buffers) ->
:func:`baselines.state_dict.load_strict` (every key and shape checked, one grouped
:class:`~baselines.state_dict.StateDictMismatch` on any difference, then ``load_state_dict(strict=True)``).
:func:`load_medclip` does all of it.

transformers 5 renamed the Swin attention / MLP parameters (table :data:`SWIN_RENAMES`, transformers 5.24
``conversion_mapping["swin"]``) and made two buffers non-persistent. Plain ``load_state_dict`` applies no
renames, so they are applied here, only under ``vision_model.model.`` (BERT has the same substrings and keeps
them), in whichever direction the installed module needs: a transformers-4 file into a transformers-5 module
or the reverse.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Mapping

import torch
from torch import Tensor, nn

from baselines import state_dict as sdl

#: (transformers 4.x name, transformers 5.x name) of Swin parameters, in the order they are applied
#: (``attention.output.dense`` before ``output.dense``).
SWIN_RENAMES: tuple[tuple[str, str], ...] = (
    ("attention.self.relative_position_bias_table", "attention.relative_position_bias.relative_position_bias_table"),
    ("attention.self.query", "attention.q_proj"),
    ("attention.self.key", "attention.k_proj"),
    ("attention.self.value", "attention.v_proj"),
    ("attention.output.dense", "attention.o_proj"),
    ("intermediate.dense", "mlp.fc1"),
    ("output.dense", "mlp.fc2"),
)
#: Only the vision tower's keys are renamed.
SWIN_PREFIX = "vision_model.model."
#: Buffers that older transformers saved and newer ones rebuild (non-persistent): dropped when the
#: installed module does not expect them, filled from the module's own (deterministic) values when it does
#: and the file lacks them.
DERIVED_BUFFERS = ("text_model.model.embeddings.position_ids", ".attention.self.relative_position_index")
WEIGHTS_NAME = "pytorch_model.bin"


def _rename(key: str, table: Iterable[tuple[str, str]]) -> str:
    if not key.startswith(SWIN_PREFIX):
        return key
    rest = "." + key[len(SWIN_PREFIX):] + "."
    for old, new in table:
        rest = rest.replace(f".{old}.", f".{new}.")
    return SWIN_PREFIX + rest[1:-1]


def swin_v4_to_v5(key: str) -> str:
    """A transformers-4 MedCLIP key under its transformers-5 name (unchanged outside the Swin tower)."""
    return _rename(key, SWIN_RENAMES)


def swin_v5_to_v4(key: str) -> str:
    """The inverse of :func:`swin_v4_to_v5`."""
    return _rename(key, [(new, old) for old, new in reversed(SWIN_RENAMES)])


def is_derived_buffer(key: str) -> bool:
    return key == DERIVED_BUFFERS[0] or (key.startswith(SWIN_PREFIX) and key.endswith(DERIVED_BUFFERS[1]))


def module_uses_v5_swin_names(expected: Iterable[str]) -> bool:
    return any(k.startswith(SWIN_PREFIX) and ".attention.q_proj." in k for k in expected)


def resolve_file(path: str | Path) -> Path:
    """The weight file of ``path``: the file itself, or in a folder ``pytorch_model.bin``, a ``.safetensors`` file
    or ``*/pytorch_model.bin`` (a zip unpacked with its folder)."""
    path = Path(path)
    if path.is_dir():
        candidates = [path / WEIGHTS_NAME, *sorted(path.glob("*.safetensors")), *sorted(path.glob("*/" + WEIGHTS_NAME))]
        found = [c for c in candidates if c.is_file()]
        if not found:
            raise FileNotFoundError(f"{path}: no {WEIGHTS_NAME} (or .safetensors) in this folder")
        path = found[0]
    if not path.is_file():
        raise FileNotFoundError(f"MedCLIP checkpoint {path} does not exist")
    return path


def read_state_dict(path: str | Path) -> dict:
    """The object stored in ``path``: a ``.bin`` / ``.pt`` / ``.pth`` (``torch.load(weights_only=True)``), a
    ``.safetensors`` file, or a folder holding ``pytorch_model.bin`` (the released zips' content)."""
    return sdl.read_state_dict(resolve_file(path))


def prepare_state_dict(obj: Mapping) -> dict[str, Tensor]:
    """Unwrap ``{"state_dict": ...}`` / ``{"model": ...}``, strip a ``module.`` prefix, cast floating-point
    tensors to float32 (float16 storage is cast exactly)."""
    return sdl.cast_floats(sdl.strip_prefixes(sdl.unwrap(obj)))


def adapt_to_module(sd: Mapping[str, Tensor], module_state: Mapping[str, Tensor]) -> tuple[dict[str, Tensor], dict]:
    """The file's keys under the installed module's names: Swin renames in the direction the module needs,
    derived buffers dropped (module does not keep them) or filled from the module (file lacks them).
    Returns the adapted dict and what was done (counts)."""
    expected = set(module_state)
    to_v5 = module_uses_v5_swin_names(expected)
    rename = swin_v4_to_v5 if to_v5 else swin_v5_to_v4
    out: dict[str, Tensor] = {}
    has_swin = any(k.startswith(SWIN_PREFIX + "encoder.layers.") for k in expected)
    notes = {"renamed": 0, "dropped": 0, "filled": 0,
             "swin_names": ("transformers-5" if to_v5 else "transformers-4") if has_swin else None,
             "file_names": ("transformers-4" if to_v5 else "transformers-5") if has_swin else None}
    for key, value in sd.items():
        new = rename(key) if key not in expected else key
        if new != key:
            notes["renamed"] += 1
        if new not in expected and is_derived_buffer(new):
            notes["dropped"] += 1
            continue
        out[new] = value
    for key in expected - set(out):
        if is_derived_buffer(key):
            out[key] = module_state[key].clone()
            notes["filled"] += 1
    return out, notes


def load_into(module: nn.Module, obj: Mapping, what: str = "checkpoint") -> dict:
    """prepare -> adapt -> strict load of a state dict already in memory; returns the adaptation notes.
    A mismatch (:class:`~baselines.state_dict.StateDictMismatch`) is reported in the file's own Swin naming (a
    transformers-4 file's missing keys under their transformers-4 names)."""
    sd, notes = adapt_to_module(prepare_state_dict(obj), module.state_dict())
    try:
        sdl.load_strict(module, sd, source=what)
    except sdl.StateDictMismatch as exc:
        if not notes["renamed"]:
            raise
        back = swin_v5_to_v4 if notes["swin_names"] == "transformers-5" else swin_v4_to_v5
        raise sdl.StateDictMismatch(sorted(back(k) for k in exc.missing), sorted(back(k) for k in exc.unexpected),
                                    [(back(k), a, b) for k, a, b in exc.misshaped],
                                    f"{what}; keys in the file's {notes['file_names']} Swin names") from None
    return notes


def load_medclip(path: str | Path, config) -> tuple[nn.Module, dict]:
    """A MedCLIP model of ``config`` (:class:`~baselines.medclip.model.MedClipConfig`) with the weights of
    ``path``, in eval mode; and the adaptation notes."""
    from baselines.medclip.model import build_model

    model = build_model(config)
    notes = load_into(model, read_state_dict(path), what=f"MedCLIP checkpoint {path}")
    return model.eval(), notes


def verify_checkpoint(path: str | Path, vision: str) -> dict:
    """Check a released-layout file against the released configuration of ``vision`` (``"resnet50"`` or
    ``"swin"``) without allocating the model (built on the meta device): the same read -> prepare -> adapt ->
    strict key / shape check as :func:`load_medclip`. Raises :class:`~baselines.state_dict.StateDictMismatch` (its
    message is the grouped report); returns the adaptation notes."""
    from baselines.medclip.model import build_model, released_config

    with torch.device("meta"):
        model = build_model(released_config(vision))
    return load_into(model, read_state_dict(path), what=f"MedCLIP checkpoint {path}")


__all__ = ["DERIVED_BUFFERS", "SWIN_PREFIX", "SWIN_RENAMES", "WEIGHTS_NAME", "adapt_to_module", "is_derived_buffer",
           "load_into", "load_medclip", "module_uses_v5_swin_names", "prepare_state_dict", "read_state_dict",
           "resolve_file", "swin_v4_to_v5", "swin_v5_to_v4", "verify_checkpoint"]
