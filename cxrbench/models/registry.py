"""Registered model adapters: name -> loader. ``cxrbench models`` prints this table."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from rich.console import Console

from cxrbench.models import medclip as _medclip
from cxrbench.models.base import ModelEntry


def _load_medslip(checkpoint: Path | None = None, description_file: Path | None = None,
                  text_encoder: str | None = None, image_size: int | None = None, progress: bool = True, **_: Any):
    from cxrbench.models.medslip import MedslipAdapter
    from cxrbench.train import demo_checkpoint, train_method

    if checkpoint is None:
        checkpoint = demo_checkpoint("medslip")
        if not (checkpoint / "medslip.json").exists():
            Console(stderr=True).print(
                "[yellow]No medslip checkpoint given and no demo checkpoint yet: training the demo config "
                "first (`cxrbench train medslip`, a few minutes on CPU)...[/]")
            checkpoint = train_method("medslip", "demo", progress=progress)
    return MedslipAdapter.from_checkpoint(checkpoint, image_size=image_size, description_file=description_file,
                                         text_encoder=text_encoder)


MODELS: dict[str, ModelEntry] = {
    "medslip": ModelEntry("medslip", "MeDSLIP (ours or the published .pth with its description file)",
                          frozenset({"zs", "ground", "ft", "seg"}), _load_medslip),
    "medclip-resnet": _medclip.ENTRY,
    "medclip-vit": _medclip.ENTRY_VIT,
}


def register_model(entry: ModelEntry) -> None:
    """Add a model adapter (baselines call this)."""
    MODELS[entry.name] = entry


def get_model(name: str) -> ModelEntry:
    try:
        return MODELS[name]
    except KeyError:
        raise KeyError(f"unknown model {name!r}; registered: {', '.join(sorted(MODELS))}") from None


# The baselines register their adapters here, by one explicit call (see baselines/__init__.py).
from baselines import register_models as _register_baseline_models  # noqa: E402

_register_baseline_models()
