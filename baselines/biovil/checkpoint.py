"""Checkpoint I/O for the BioViL family: safe reading and a strict, readable state-dict match.

Files are read with ``torch.load(..., weights_only=True)`` (``.pt`` / ``.pth`` / ``.bin``) or safetensors;
nothing else is unpickled. :func:`load_strict` compares the names and shapes of a state dict with a module's
before loading anything, and raises :class:`StateDictMismatch` whose message groups the missing and the
unexpected keys by prefix and lists the shape mismatches (one readable message instead of a traceback).
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Iterable, Mapping

import torch
from torch import Tensor, nn


class StateDictMismatch(ValueError):
    """A state dict does not fit a module (missing / unexpected keys or shape mismatches)."""

    def __init__(self, what: str, missing: list[str], unexpected: list[str],
                 shapes: list[tuple[str, tuple[int, ...], tuple[int, ...]]]) -> None:
        self.what, self.missing, self.unexpected, self.shapes = what, missing, unexpected, shapes
        super().__init__(mismatch_message(what, missing, unexpected, shapes))


def _group(keys: Iterable[str]) -> dict[str, list[str]]:
    """Keys grouped by their first dotted component, each group named by its longest common dotted prefix."""
    first: dict[str, list[str]] = defaultdict(list)
    for key in keys:
        first[key.split(".")[0]].append(key)
    groups = {}
    for members in first.values():
        parts = [k.split(".") for k in members]
        common = []
        for column in zip(*parts):
            if len(set(column)) != 1:
                break
            common.append(column[0])
        if len(members) > 1 and len(common) == min(len(p) for p in parts):
            common = common[:-1]  # a key that is also a prefix of another
        groups[".".join(common)] = members
    return dict(sorted(groups.items()))


def _describe_group(prefix: str, keys: list[str], show: int = 3) -> str:
    """A few keys in full; more as ``prefix.* (N keys: first tails, ...)``."""
    if len(keys) <= show:
        return ", ".join(keys)
    tails = [k[len(prefix) + 1:] for k in keys]
    return f"{prefix}.* ({len(keys)} keys: {', '.join(tails[:show])}, ...)"


def mismatch_message(what: str, missing: list[str], unexpected: list[str],
                     shapes: list[tuple[str, tuple[int, ...], tuple[int, ...]]]) -> str:
    """One message: counts, then missing / unexpected keys grouped by prefix, then shape mismatches."""
    parts = []
    if missing:
        parts.append(f"missing {len(missing)} keys: " + "; ".join(
            _describe_group(p, ks) for p, ks in _group(missing).items()))
    if unexpected:
        parts.append(f"unexpected {len(unexpected)} keys: " + "; ".join(
            _describe_group(p, ks) for p, ks in _group(unexpected).items()))
    if shapes:
        parts.append(f"{len(shapes)} shape mismatches: " + "; ".join(
            f"{k} file {list(got)} vs model {list(want)}" for k, got, want in shapes))
    return f"{what} does not fit the model: " + " | ".join(parts)


def read_state_dict(path: str | Path) -> dict[str, Tensor]:
    """A state dict from ``path`` (safetensors, or a torch file read with ``weights_only=True``)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a pickle with objects, a truncated file, not a torch file
        raise ValueError(f"{path}: not a readable weights-only torch checkpoint ({exc.__class__.__name__}: "
                         f"{str(exc).splitlines()[0] if str(exc) else ''})") from None
    if not isinstance(state, Mapping):
        raise ValueError(f"{path}: holds a {type(state).__name__}, not a state dict")
    return dict(state)


def unwrap(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Undo the usual wrappers: ``{"state_dict": ...}`` / ``{"model": ...}`` and a ``module.`` prefix on every key."""
    state = dict(state)
    for wrapper in ("state_dict", "model"):
        if set(state) == {wrapper} and isinstance(state[wrapper], Mapping):
            state = dict(state[wrapper])
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return state


def compare(module: nn.Module, state: Mapping[str, Tensor]) -> tuple[list[str], list[str], list]:
    """(missing, unexpected, shape mismatches) of ``state`` against ``module.state_dict()``."""
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [(k, tuple(state[k].shape), tuple(own[k].shape)) for k in own
              if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    return missing, unexpected, shapes


def load_strict(module: nn.Module, state: Mapping[str, Tensor], what: str, assign: bool = False) -> nn.Module:
    """Load ``state`` into ``module`` strictly (names and shapes checked first, one readable error).

    Floating values are cast to the module's dtype (the released files are float32; fixtures may store
    float16). ``assign=True`` replaces the module's tensors (for a module built on the meta device).
    """
    missing, unexpected, shapes = compare(module, state)
    if missing or unexpected or shapes:
        raise StateDictMismatch(what, missing, unexpected, shapes)
    if assign:
        own = module.state_dict()
        state = {k: (v.to(own[k].dtype) if v.is_floating_point() and own[k].is_floating_point() else v)
                 for k, v in state.items()}
    module.load_state_dict(dict(state), strict=True, assign=assign)
    return module


__all__ = ["StateDictMismatch", "compare", "load_strict", "mismatch_message", "read_state_dict", "unwrap"]
