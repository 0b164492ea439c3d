"""Strict state-dict loading with a readable, grouped account of any difference.

A released file that does not match the module it is loaded into is explained in one message: the
missing, unexpected and mis-shaped keys, each grouped by prefix (``decoder.layers.3``: 12 keys) so a
file of the wrong configuration (a ResNet-18 file given to a ResNet-50 model, a MeDSLIP file given
to MedKLIP) is recognisable at a glance. :class:`StrictLoadMismatch` is a
:class:`medslip.checkpoint.CheckpointMismatch`, so code that catches the latter catches it too.
"""

from __future__ import annotations

from collections import Counter
from typing import Mapping

from torch import Tensor, nn

from medslip.checkpoint import CheckpointMismatch

#: How many prefix groups a message names per kind before it says "and N more".
MAX_GROUPS = 8


def key_group(key: str) -> str:
    """The prefix a key is reported under: its module path up to and including the first index."""
    parts = key.split(".")[:-1] or key.split(".")
    for i, part in enumerate(parts):
        if part.isdigit():
            return ".".join(parts[: i + 1])
    return ".".join(parts[:2]) if len(parts) > 1 else parts[0]


def group_keys(keys: list[str]) -> str:
    """``prefix.* (n), ...`` for a list of keys, in order of first appearance."""
    counts = Counter(key_group(k) for k in keys)
    items = [f"{group}.* ({n})" for group, n in counts.items()]
    if len(items) > MAX_GROUPS:
        items = items[:MAX_GROUPS] + [f"and {len(items) - MAX_GROUPS} more groups"]
    return ", ".join(items)


class StrictLoadMismatch(CheckpointMismatch):
    """A state dict does not match the module; the message groups the differing keys by prefix."""

    def __init__(self, what: str, missing: list[str], unexpected: list[str],
                 misshaped: list[tuple[str, tuple, tuple]]) -> None:
        super().__init__(missing, unexpected, misshaped)
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing: {group_keys(missing)}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected: {group_keys(unexpected)}")
        if misshaped:
            shown = "; ".join(f"{k} file {list(got)} vs model {list(want)}" for k, got, want in misshaped[:4])
            more = f"; and {len(misshaped) - 4} more" if len(misshaped) > 4 else ""
            parts.append(f"{len(misshaped)} mis-shaped: {shown}{more}")
        self.what = what
        self.args = (f"{what} does not match the model ({'; '.join(parts)})",)

    def __str__(self) -> str:
        return self.args[0]


def compare(own: Mapping[str, Tensor], state_dict: Mapping[str, Tensor]
            ) -> tuple[list[str], list[str], list[tuple[str, tuple, tuple]]]:
    """(missing, unexpected, mis-shaped) keys of ``state_dict`` against the module's own ``own``; shapes
    may be given as tensors or as shape tuples / lists."""
    def shape(v) -> tuple:
        return tuple(v.shape) if hasattr(v, "shape") else tuple(v)

    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    misshaped = [(k, shape(state_dict[k]), shape(own[k])) for k in own
                 if k in state_dict and shape(state_dict[k]) != shape(own[k])]
    return missing, unexpected, misshaped


def check_keys(own: Mapping[str, Tensor], state_dict: Mapping, what: str) -> None:
    """Raise :class:`StrictLoadMismatch` unless ``state_dict`` has exactly the keys and shapes of ``own``."""
    missing, unexpected, misshaped = compare(own, state_dict)
    if missing or unexpected or misshaped:
        raise StrictLoadMismatch(what, missing, unexpected, misshaped)


def load_strict(module: nn.Module, state_dict: Mapping[str, Tensor], what: str = "state dict") -> None:
    """``module.load_state_dict(state_dict, strict=True)``, after a grouped check of keys and shapes.
    Floating values are cast to the module's dtypes by ``load_state_dict`` itself."""
    check_keys(module.state_dict(), state_dict, what)
    module.load_state_dict(dict(state_dict), strict=True)


__all__ = ["StrictLoadMismatch", "check_keys", "compare", "group_keys", "key_group", "load_strict"]
