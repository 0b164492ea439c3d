"""Reading a released checkpoint and loading it strictly, with a readable diff when it does not fit.

Every published-model family uses the same four steps, so a user's downloaded file and a fixture's
tensors go through the same code:

1. :func:`read_state_dict`: ``torch.load(..., weights_only=True)`` (``.pt`` / ``.pth`` / ``.bin`` / ``.ckpt``)
   or safetensors; nothing arbitrary is unpickled; a ``.json`` key manifest (``{key: shape}``) gives meta
   tensors, so a released layout is checked without its weights;
2. :func:`unwrap`: take the state dict out of a training wrapper (``{"state_dict": ...}``, ``{"model": ...}``)
   and :func:`strip_prefixes` (``module.``, ``model.`` ...);
3. :func:`cast_floats`: floating-point tensors to one dtype (fp16 releases are read in fp32);
4. :func:`load_strict`: compare keys and shapes with the module, and raise :class:`StateDictMismatch`
   (every missing, unexpected and mis-shaped key in one message, grouped by prefix) before touching the
   module; otherwise ``load_state_dict(strict=True)``.

:func:`check_keys` / :func:`compare_shapes` do step 4 without loading (a released key list checked against a
module built on the meta device, without the weights). This is the one strict loader of the ``baselines`` layer:
every zoo family (BiomedCLIP, CheXzero, BioViL, MedCLIP, GLoRIA, MedKLIP) reports a mismatch through
:class:`StateDictMismatch`, a :class:`medslip.checkpoint.CheckpointMismatch`, so the command line answers every
family's mismatch the same way. Family-specific steps (MedCLIP's Swin renames, BioViL's tied text weights,
GLoRIA's Lightning wrapper) happen before it.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import torch
from torch import Tensor, nn

from medslip.checkpoint import CheckpointMismatch

#: Suffixes read with ``torch.load(weights_only=True)``; everything else must be safetensors.
TORCH_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt", ".tar")
#: Wrapper keys tried, in order, by :func:`unwrap`.
WRAPPER_KEYS = ("state_dict", "model_state_dict", "model", "module", "net")

Shape = tuple[int, ...]


def _group(key: str) -> str:
    """The module a key is reported under: its path up to the first layer index ("decoder.layers" for
    ``decoder.layers.3.norm1.weight``), or its parent module when the path has none."""
    module = key.split(".")[:-1] or [key]
    for i, part in enumerate(module):
        if part.isdigit():
            return ".".join(module[:i or 1])
    return ".".join(module)


def _grouped_lines(keys: Sequence[str], show: int = 4) -> list[str]:
    """``keys`` as lines, one per module (:func:`_group`), a few of its keys shown after the module's name."""
    groups: "OrderedDict[str, list[str]]" = OrderedDict()
    for key in sorted(keys):
        groups.setdefault(_group(key), []).append(key)
    lines = []
    for prefix, members in groups.items():
        if len(members) == 1:
            lines.append(f"    - {members[0]}")
        else:
            shown = ", ".join(m[len(prefix) + 1:] for m in members[:show])
            more = f", ... (+{len(members) - show})" if len(members) > show else ""
            lines.append(f"    - {prefix}.* ({len(members)}): {shown}{more}")
    return lines


class StateDictMismatch(CheckpointMismatch):
    """A state dict does not fit the module: missing, unexpected and mis-shaped keys, grouped by prefix.

    A :class:`medslip.checkpoint.CheckpointMismatch`, so code that catches that catches this too.
    ``source`` names the file (or fixture) in the message.
    """

    def __init__(self, missing: list[str], unexpected: list[str], misshaped: list[tuple[str, Shape, Shape]],
                 source: str | None = None) -> None:
        self.missing, self.unexpected, self.misshaped = list(missing), list(unexpected), list(misshaped)
        self.source = source
        where = f" ({source})" if source else ""
        lines = [f"state dict does not match the model{where}: {len(self.missing)} missing, "
                 f"{len(self.unexpected)} unexpected, {len(self.misshaped)} mis-shaped key(s)"]
        if self.missing:
            lines.append(f"  missing from the file ({len(self.missing)}):")
            lines += _grouped_lines(self.missing)
        if self.unexpected:
            lines.append(f"  unexpected in the file ({len(self.unexpected)}):")
            lines += _grouped_lines(self.unexpected)
        if self.misshaped:
            lines.append(f"  shape mismatches ({len(self.misshaped)}):")
            lines += [f"    - {k}: file {list(got)} vs model {list(want)}" for k, got, want in self.misshaped]
        RuntimeError.__init__(self, "\n".join(lines))


class UnreadableCheckpoint(ValueError):
    """The file is not a checkpoint this loader can read safely (one-line message)."""


def read_state_dict(path: str | Path) -> dict:
    """The object stored in a checkpoint file, read without unpickling arbitrary objects."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    if path.suffix == ".json":  # a released key manifest {key: shape}: meta tensors, checked without weights
        import json

        try:
            manifest = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise UnreadableCheckpoint(f"{path}: not a JSON key manifest ({exc})") from None
        if not (isinstance(manifest, dict) and all(isinstance(v, list) for v in manifest.values())):
            raise UnreadableCheckpoint(f"{path}: a key manifest maps each key to its shape (a list of ints)")
        return manifest_state_dict(manifest)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    if path.suffix not in TORCH_SUFFIXES:
        raise UnreadableCheckpoint(f"{path}: unknown checkpoint suffix {path.suffix!r} (expected .safetensors or "
                                   f"{', '.join(TORCH_SUFFIXES)})")
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle.UnpicklingError and friends: say it in one line
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UnreadableCheckpoint(f"{path}: cannot be read with torch.load(weights_only=True): {first}") from None
    if not isinstance(obj, Mapping):
        raise UnreadableCheckpoint(f"{path}: holds a {type(obj).__name__}, not a state dict")
    return dict(obj)


def unwrap(obj: Mapping, keys: Iterable[str] = WRAPPER_KEYS) -> dict[str, Tensor]:
    """The state dict inside a training wrapper (the first of ``keys`` whose value is a mapping of tensors),
    or ``obj`` itself when its values are tensors."""
    current: Mapping = obj
    for _ in range(3):  # wrappers may nest ({"model": {"state_dict": ...}})
        if current and all(isinstance(v, Tensor) for v in current.values()):
            return dict(current)
        for key in keys:
            value = current.get(key) if isinstance(current, Mapping) else None
            if isinstance(value, Mapping):
                current = value
                break
        else:
            break
    tensors = {k: v for k, v in current.items() if isinstance(v, Tensor)}
    if not tensors:
        raise UnreadableCheckpoint(f"no tensors found (top-level keys: {', '.join(map(str, list(obj)[:8]))})")
    return tensors


def strip_prefixes(state_dict: Mapping[str, Tensor], prefixes: Sequence[str] = ("module.",)) -> dict[str, Tensor]:
    """Remove each of ``prefixes`` (in order, repeatedly) from the keys that start with it."""
    out = {}
    for key, value in state_dict.items():
        changed = True
        while changed:
            changed = False
            for prefix in prefixes:
                if prefix and key.startswith(prefix):
                    key, changed = key[len(prefix):], True
        out[key] = value
    return out


def cast_floats(state_dict: Mapping[str, Tensor], dtype: torch.dtype = torch.float32) -> dict[str, Tensor]:
    """Floating-point tensors to ``dtype`` (integer / bool buffers are kept)."""
    return {k: v.to(dtype) if v.is_floating_point() else v for k, v in state_dict.items()}


def compare_shapes(own: Mapping[str, Shape], given: Mapping[str, Shape], ignore: Iterable[str] = (),
                   source: str | None = None) -> StateDictMismatch | None:
    """The mismatch between a module's ``{key: shape}`` and a file's, or None when they agree."""
    skip = set(ignore)
    own = {k: tuple(v) for k, v in own.items() if k not in skip}
    given = {k: tuple(v) for k, v in given.items() if k not in skip}
    missing = sorted(set(own) - set(given))
    unexpected = sorted(set(given) - set(own))
    misshaped = [(k, given[k], own[k]) for k in sorted(set(own) & set(given)) if given[k] != own[k]]
    if missing or unexpected or misshaped:
        return StateDictMismatch(missing, unexpected, misshaped, source)
    return None


def shapes(state_dict: Mapping[str, Tensor]) -> dict[str, Shape]:
    return {k: tuple(v.shape) for k, v in state_dict.items()}


def _shape(value) -> Shape:
    return tuple(value.shape) if hasattr(value, "shape") else tuple(value)


def check_keys(own: Mapping, given: Mapping, ignore: Iterable[str] = (), source: str | None = None) -> None:
    """Raise :class:`StateDictMismatch` unless ``given`` has exactly the keys and shapes of ``own`` (tensors or
    shapes on either side; a module built on the meta device checks a file without its weights)."""
    mismatch = compare_shapes({k: _shape(v) for k, v in own.items()}, {k: _shape(v) for k, v in given.items()},
                              ignore, source)
    if mismatch is not None:
        raise mismatch


def load_strict(module: nn.Module, state_dict: Mapping[str, Tensor], ignore: Iterable[str] = (),
                source: str | None = None, assign: bool | None = None) -> nn.Module:
    """Load ``state_dict`` into ``module`` strictly; raise :class:`StateDictMismatch` on any difference, before
    the module is touched. Returns the module.

    ``ignore`` names keys dropped from both sides first (e.g. a legacy ``position_ids`` buffer). ``assign``
    replaces the module's tensors instead of copying into them; by default it is used when either side holds
    meta tensors (a key manifest, or a module built on the meta device). Assigned floating-point values are cast
    to the module's own dtypes (a copy casts by itself), so a float16 file gives a float32 module either way.
    """
    skip = set(ignore)
    sd = {k: v for k, v in state_dict.items() if k not in skip}
    own = {k: v for k, v in module.state_dict().items() if k not in skip}
    check_keys(own, sd, source=source)
    if assign is None:
        assign = any(v.is_meta for v in sd.values()) or any(v.is_meta for v in own.values())
    if assign:
        sd = {k: v.to(own[k].dtype) if v.is_floating_point() and own[k].is_floating_point() else v
              for k, v in sd.items()}
    result = module.load_state_dict(sd, strict=not skip, assign=assign)
    if skip:  # the ignored keys are absent from sd on purpose; anything else would have been caught above
        bad = [k for k in result.missing_keys if k not in skip] + list(result.unexpected_keys)
        if bad:
            raise StateDictMismatch([k for k in result.missing_keys if k not in skip], list(result.unexpected_keys),
                                    [], source)
    return module


def manifest_state_dict(manifest: Mapping[str, Sequence[int]], dtype: torch.dtype = torch.float32) -> dict[str, Tensor]:
    """A released key manifest (``{key: shape}``) as meta tensors, to go through a loader without weights."""
    return {k: torch.empty(tuple(shape), dtype=dtype, device="meta") for k, shape in manifest.items()}


__all__ = ["StateDictMismatch", "UnreadableCheckpoint", "cast_floats", "check_keys", "compare_shapes", "load_strict",
           "manifest_state_dict", "read_state_dict", "shapes", "strip_prefixes", "unwrap"]
