"""``cxrbench zoo reference FIXTURE.safetensors``: check a zoo fixture against our re-implementation.

The fixture's ``model`` metadata picks the family through :data:`REPRODUCERS` (explicit, lazily
imported); the family's ``reproduce(tensors, meta) -> list[baselines.reference.Check]`` rebuilds the
model through the user path from the fixture's tensors and metadata and returns one check per expected
tensor.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Callable

from baselines.reference import Check, Verdict, evaluate, load_fixture

#: fixture ``model`` metadata -> module defining ``reproduce(tensors, meta)``.
REPRODUCERS: dict[str, str] = {
    "chexzero": "baselines.chexzero.reference",
    "biovil": "baselines.biovil.reference",
    "medclip-resnet": "baselines.medclip.reference",
    "medclip-vit": "baselines.medclip.reference",
    "medclip-preprocess": "baselines.medclip.reference",
    "medklip": "baselines.medklip.reference",
    "gloria": "baselines.gloria.reference",
}


#: Prefix of a fixture's expected tensors; each must be covered by a check (named with or without it).
EXPECTED = "expected."


class ReferenceUnavailable(ValueError):
    """The fixture names no model, an unknown one, or one whose reproduction is not implemented yet."""


def reproducer(model: str) -> Callable[..., list[Check]]:
    if model not in REPRODUCERS:
        raise ReferenceUnavailable(f"fixture model {model!r} is unknown; known: {', '.join(sorted(REPRODUCERS))}")
    module_name = REPRODUCERS[model]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise ReferenceUnavailable(f"fixture model {model!r}: not implemented ({module_name} does not exist "
                                       "yet)") from None
        raise
    fn = getattr(module, "reproduce", None)
    if fn is None:
        raise ReferenceUnavailable(f"fixture model {model!r}: not implemented ({module_name} has no reproduce())")
    return fn


def check_fixture(path: str | Path) -> tuple[str, list[Verdict]]:
    """(model name, one verdict per expected tensor) of a fixture file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"fixture not found: {path}")
    try:
        tensors, meta = load_fixture(path)
    except Exception as exc:  # not a safetensors file
        raise ReferenceUnavailable(f"{path}: not a readable safetensors fixture ({type(exc).__name__})") from None
    model = meta.get("model")
    if not model:
        raise ReferenceUnavailable(f"{path}: the fixture has no 'model' metadata")
    checks = reproducer(model)(tensors, meta)
    verdicts = [evaluate(c) for c in checks]
    covered = {c.name for c in checks}
    for name in sorted(k for k in tensors if k.startswith(EXPECTED)):
        if name not in covered and name[len(EXPECTED):] not in covered:
            verdicts.append(Verdict(name, tuple(tensors[name].shape), float("nan"), float("nan"), "not checked", False))
    return model, verdicts


__all__ = ["REPRODUCERS", "ReferenceUnavailable", "check_fixture", "reproducer"]
