"""``cxrbench train clip``: contrastive image <-> report pre-training of the CLIP baseline.

Data: the train split of a MIMIC-CXR-JPG folder with its reports (the embedded SynthCXR pre-training
corpus by default: the same images as the MeDSLIP demo), each image paired with its study's
FINDINGS + IMPRESSION. The loop is :func:`medslip.trainer.train` (resumable, DDP under torchrun,
bf16 on CUDA); the final checkpoint is ``<run dir>/final`` (:mod:`baselines.clip.checkpoint`).
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console


def clip_config(config: dict[str, Any]):
    """The :class:`ClipConfig` of a run config (``model`` + ``data.image_size`` + ``text_max_length``)."""
    from baselines.clip.model import ClipConfig

    return ClipConfig.from_dict({**config.get("model", {}), "image_size": int(config["data"]["image_size"]),
                                 "context_length": int(config.get("text_max_length", 128))})


def report_table(config: dict[str, Any], data_root, progress: bool = True):
    """(train rows with ``path`` and ``text``, corpus root, cache name) of the configured corpus."""
    from baselines.clip.data import drop_empty, report_text
    from cxrbench.data.registry import get_dataset

    data = config["data"]
    source = data.get("source", "synth")
    root = data_root or data.get("root")
    cache_name = "mimic-cxr"
    if source == "synth":
        if root is None:
            from cxrbench.synth import default_root

            root = default_root("medslip-pretrain", progress=progress)
        cache_name = "medslip-pretrain"
    elif source != "mimic-cxr":
        raise ValueError(f"unknown CLIP pre-training source {source!r}: use synth (the embedded corpus) or "
                         "mimic-cxr (a MIMIC-CXR-JPG folder with the reports beside the studies)")
    if root is None:
        raise ValueError(f"data source {source!r} needs a folder: pass --data-root DIR (or set data.root)")
    table = get_dataset("mimic-cxr").load(root, split="train")
    texts = [report_text(p) for p in table["report_path"]]
    keep = drop_empty(texts)
    table = table.iloc[keep].reset_index(drop=True)
    table["text"] = [texts[i] for i in keep]
    return table, Path(root), cache_name, len(texts) - len(keep)


@dataclass(frozen=True)
class ClipMethod:
    name: str = "clip"
    description: str = ("CLIP/ConVIRT-style baseline (open_clip: timm ResNet or ViT image tower, HF text tower, "
                        "InfoNCE on image <-> FINDINGS + IMPRESSION)")

    def train(self, config: dict[str, Any], run_dir: Path, *, data_root=None, resume: bool = False,
              device: str | None = None, progress: bool = True) -> Path:
        import torch

        from baselines.clip.checkpoint import save_clip_checkpoint
        from baselines.clip.data import ImageReportDataset
        from baselines.clip.model import ClipModel, load_tokenizer, resolve_text_tower, tokenize
        from cxrbench.data.cache import build_cache
        from cxrbench.downloads import downloads_allowed
        from cxrbench.train import (data_fingerprint, print_loss_trend, rank_zero_first, run_summary, train_config,
                                    write_run_config)
        from medslip.trainer import distributed_context, train

        console = Console(stderr=True)
        rank, _, _ = distributed_context()
        tcfg = train_config(config)
        cfg = clip_config(config)
        run_dir = Path(run_dir)
        with rank_zero_first():  # under torchrun rank 0 fills the caches (and the run dir), the others then read them
            run_dir.mkdir(parents=True, exist_ok=True)
            folder, identity, pretrained = resolve_text_tower(config.get("text_encoder", "minilm"), scratch=run_dir,
                                                              allow_download=downloads_allowed())
            torch.manual_seed(tcfg.seed)
            model = ClipModel.create(cfg, folder, pretrained)
            tokenizer = load_tokenizer(folder)
            table, root, cache_name, n_empty = report_table(config, data_root, progress=progress and rank == 0)
            paths = table["path"].tolist()
            images = build_cache(paths, cfg.image_size, cache_name, progress=progress and rank == 0)
        input_ids = tokenize(tokenizer, table["text"].tolist(), cfg.context_length)
        dataset = ImageReportDataset(images, input_ids, cfg.image_size, config["data"].get("augment", "light"),
                                     seed=tcfg.seed)
        text_hash = [hashlib.sha256(t.encode()).hexdigest()[:16] for t in table["text"]]
        fingerprint = data_fingerprint(paths, text_hash)
        if rank == 0:
            tower = "open_clip ViT" if cfg.is_vit else f"timm {cfg.vision}"
            console.print(f"[bold]clip[/]: {len(dataset)} image-report pairs from {root} at {cfg.image_size} px "
                          f"({n_empty} without report text skipped), image tower {tower}, text tower "
                          f"{identity}, run dir {run_dir}")
            write_run_config(run_dir, config, {"data_root": str(root), "n_train": len(dataset),
                                               "data_fingerprint": fingerprint})
        start = time.perf_counter()
        result = train(model, dataset, tcfg, run_dir, resume=resume, device=device, progress=progress)
        final = run_dir / "final"
        if rank == 0:
            summary = run_summary(result, time.perf_counter() - start)
            save_clip_checkpoint(model.cpu(), final, tokenizer, identity,
                                 extra={"method": self.name, "config": config, "train": summary,
                                        "data_root": str(root), "data_fingerprint": fingerprint})
            print_loss_trend(console, summary, final)
        return final


CLIP = ClipMethod()

__all__ = ["CLIP", "ClipMethod", "clip_config", "report_table"]
