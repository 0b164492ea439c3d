"""Baselines for cxrbench: CLIP-style (open_clip), the single-stream SingleStreamMeDSLIP ablation, supervised inits.

One subpackage per baseline:

- :mod:`baselines.clip`: our CLIP/ConVIRT-style model (open_clip: timm ResNet + HF text tower), trained
  with ``cxrbench train clip``; model ``clip``; with a ViT image tower (``--config demo-vit``), model
  ``clip-vit`` (zero-shot and grounding);
- :mod:`baselines.openclip`: any open_clip model with local weights; model ``open-clip``;
- :mod:`baselines.single_stream`: MeDSLIP's pathology stream alone, trained with ``cxrbench train medslip-single-stream``;
  model ``medslip-single-stream``;
- :mod:`baselines.supervised`: torchvision ResNet-50, random or ImageNet; models ``resnet50-random`` and
  ``resnet50-imagenet`` (fine-tuning and segmentation only).

The harness's registries call :func:`register_models` / :func:`register_methods` (explicitly, at the
end of ``cxrbench/models/registry.py`` and ``cxrbench/methods/__init__.py``). Importing this package
imports nothing heavy and nothing from :mod:`cxrbench`; loaders import their code when called.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

ALL_SETTINGS = frozenset({"zs", "ground", "ft", "seg"})


def _demo_or_train(method: str, marker: str, config: str = "demo", run_name: str | None = None,
                   progress: bool = True) -> Path:
    """The demo checkpoint of ``method`` (of ``config``, kept as the demo run ``run_name``), training it
    first (with a message) when absent."""
    from rich.console import Console

    from cxrbench.train import demo_checkpoint, demo_run_dir, train_method

    name = run_name or method
    checkpoint = demo_checkpoint(name)
    if not (checkpoint / marker).exists():
        command = f"cxrbench train {method}" + ("" if config == "demo" else f" --config {config}")
        Console(stderr=True).print(
            f"[yellow]No {name} checkpoint given and no demo checkpoint yet: training the {config} config first "
            f"(`{command}`, a few minutes on CPU)...[/]")
        checkpoint = train_method(method, config, out=None if config == "demo" else demo_run_dir(name),
                                  progress=progress)
    return checkpoint


def _load_clip(checkpoint: Path | None = None, image_size: int | None = None, progress: bool = True, **_: Any):
    from baselines.clip.adapter import ClipAdapter
    from baselines.clip.checkpoint import CONFIG_FILE

    return ClipAdapter.from_checkpoint(checkpoint or _demo_or_train("clip", CONFIG_FILE, progress=progress),
                                       image_size=image_size)


def _load_clip_vit(checkpoint: Path | None = None, image_size: int | None = None, progress: bool = True,
                   **_: Any):
    from baselines.clip.adapter import ClipAdapter
    from baselines.clip.checkpoint import CONFIG_FILE

    path = checkpoint or _demo_or_train("clip", CONFIG_FILE, config="demo-vit", run_name="clip-vit",
                                        progress=progress)
    return ClipAdapter.from_checkpoint(path, image_size=image_size, name="clip-vit", vit=True)


def _load_single_stream(checkpoint: Path | None = None, text_encoder: str | None = None,
                  image_size: int | None = None, progress: bool = True, **_: Any):
    from baselines.single_stream.adapter import SingleStreamAdapter

    return SingleStreamAdapter.from_checkpoint(checkpoint or _demo_or_train("medslip-single-stream", "medslip.json", progress=progress),
                                          image_size=image_size, text_encoder=text_encoder)


def _load_open_clip(checkpoint: Path | None = None, **kwargs: Any):
    from baselines.openclip.adapter import load_open_clip

    return load_open_clip(checkpoint, **kwargs)


def _load_resnet50_random(checkpoint: Path | None = None, **kwargs: Any):
    from baselines.supervised.adapter import load_random

    return load_random(checkpoint, **kwargs)


def _load_resnet50_imagenet(checkpoint: Path | None = None, **kwargs: Any):
    from baselines.supervised.adapter import load_imagenet

    return load_imagenet(checkpoint, **kwargs)


def register_models() -> None:
    """Add the baselines' model adapters to ``cxrbench.models.registry.MODELS``."""
    from cxrbench.models.registry import ModelEntry, register_model

    for entry in (
        ModelEntry("clip", "CLIP/ConVIRT-style baseline trained by `cxrbench train clip` (open_clip: timm ResNet "
                   "+ HF text tower); prompt-set zero-shot, patch-similarity grounding", ALL_SETTINGS, _load_clip),
        ModelEntry("clip-vit", "the CLIP baseline with a ViT image tower (demo: `cxrbench train clip --config "
                   "demo-vit`); prompt-set zero-shot, patch-token grounding", frozenset({"zs", "ground"}),
                   _load_clip_vit),
        ModelEntry("open-clip", "any open_clip model with local weights: --checkpoint ARCH:TAG | ARCH:/weights | "
                   "ARCH:random | hf-hub:ORG/REPO | local-dir:/path; zs for every model, ground for RN and ViT "
                   "towers, ft / seg for RN towers", ALL_SETTINGS, _load_open_clip),
        ModelEntry("medslip-single-stream", "single-stream ablation (pathology queries + existence loss), "
                   "trained by `cxrbench train medslip-single-stream`", ALL_SETTINGS, _load_single_stream),
        ModelEntry("resnet50-random", "randomly initialised torchvision ResNet-50 (supervised baseline)",
                   frozenset({"ft", "seg"}), _load_resnet50_random),
        ModelEntry("resnet50-imagenet", "torchvision ResNet-50 with ImageNet weights from the local torch hub "
                   "cache (downloaded only with --allow-download)", frozenset({"ft", "seg"}), _load_resnet50_imagenet),
    ):
        register_model(entry)


def register_methods() -> None:
    """Add the trainable baselines to ``cxrbench.methods.METHODS`` (``cxrbench train clip|medslip-single-stream``)."""
    from cxrbench.methods import register_method  # first: its import may run this function itself

    from baselines.clip.method import CLIP
    from baselines.single_stream.method import SINGLE_STREAM

    register_method(CLIP)
    register_method(SINGLE_STREAM)


def register_all() -> None:
    """Register every baseline's model adapters and training methods."""
    register_models()
    register_methods()


__all__ = ["register_all", "register_methods", "register_models"]
