"""The model registry: every model adapter the harness can evaluate, listed explicitly.

One module per adapter in :mod:`cxrbench.models` defines its ``ModelEntry`` (name, description, settings,
loader); this dictionary lists them. ``cxrbench models`` prints it; ``cxrbench run --model NAME`` looks
names up here. Adapter modules import their heavy dependencies when a model is loaded, not here.
"""

from __future__ import annotations

from cxrbench.models import (biomedclip, biovil, chexzero, clip, gloria, medclip, medklip, medslip,
                             medslip_single_stream, open_clip, pubmedclip, supervised)
from cxrbench.models.base import ModelEntry

MODELS: dict[str, ModelEntry] = {
    entry.name: entry
    for entry in (
        medslip.ENTRY,
        medslip_single_stream.ENTRY,
        clip.ENTRY,
        clip.VIT_ENTRY,
        open_clip.ENTRY,
        supervised.RANDOM_ENTRY,
        supervised.IMAGENET_ENTRY,
        # the model zoo: published checkpoints (cxrbench/zoo/catalog.yaml)
        biomedclip.ENTRY,
        chexzero.ENTRY,
        pubmedclip.ENTRY,
        medklip.ENTRY,
        gloria.ENTRY,
        biovil.ENTRY,
        biovil.ENTRY_T,
        medclip.ENTRY,
        medclip.ENTRY_VIT,
    )
}


def get_model(name: str) -> ModelEntry:
    try:
        return MODELS[name]
    except KeyError:
        raise KeyError(f"unknown model {name!r}; registered: {', '.join(sorted(MODELS))}") from None


__all__ = ["MODELS", "ModelEntry", "get_model"]
