"""MeDSLIP as a ``cxrbench train`` method."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from cxrbench.train import (
    data_fingerprint,
    load_text_encoder_for,
    pretrain_table,
    print_loss_trend,
    rank_zero_first,
    run_summary,
    train_config,
    write_run_config,
)


@dataclass(frozen=True)
class MedslipMethod:
    name: str = "medslip"
    description: str = "MeDSLIP: dual-stream pathology/anatomy pre-training (prototype + interaction losses)"

    def build_model(self, config: dict[str, Any], encoder):
        from medslip import MeDSLIP, MeDSLIPConfig
        from medslip.books import anatomy_texts, encode_books, load_pathology_book, pathology_texts

        from cxrbench.paths import cache_dir

        book_path = config.get("pathology_book")
        p_texts = load_pathology_book(book_path) if book_path else pathology_texts()
        a_texts = anatomy_texts()
        book_p, book_a = encode_books(encoder, p_texts, a_texts, cache_dir=cache_dir() / "books")
        model_cfg = MeDSLIPConfig(text_width=encoder.width, **config.get("model", {}))
        return MeDSLIP(model_cfg, book_p, book_a), p_texts, a_texts

    def train(self, config: dict[str, Any], run_dir: Path, *, data_root=None, resume: bool = False,
              device: str | None = None, progress: bool = True) -> Path:
        import torch

        from medslip.checkpoint import save_checkpoint
        from medslip.pretrain import PretrainDataset
        from medslip.trainer import distributed_context, train

        from cxrbench.data.cache import build_cache

        console = Console(stderr=True)
        rank, _, _ = distributed_context()
        tcfg = train_config(config)
        torch.manual_seed(tcfg.seed)
        size = int(config["data"]["image_size"])
        with rank_zero_first():  # under torchrun rank 0 fills the caches, the other ranks then read them
            # the data first: a wrong folder is reported before the text encoder is loaded
            table, matrix, root = pretrain_table(config, data_root, progress=progress and rank == 0)
            encoder, encoder_name = load_text_encoder_for(config)
            model, p_texts, a_texts = self.build_model(config, encoder)
            paths = table["path"].tolist()
            images = build_cache(paths, size, "medslip-pretrain", progress=progress and rank == 0)
        label_ids = table["labels_id"].to_numpy()
        dataset = PretrainDataset(images, (label_ids, matrix), size, config["data"].get("augment", "paper"),
                                  num_negatives=model.config.num_negatives, seed=tcfg.seed)
        if rank == 0:
            console.print(f"[bold]medslip[/]: {len(dataset)} training images from {root} at {size} px, "
                          f"text encoder {encoder.identity} (T = {encoder.width}), run dir {run_dir}")
            run_dir.mkdir(parents=True, exist_ok=True)
            write_run_config(run_dir, config, {"data_root": str(root), "n_train": len(dataset),
                                               "data_fingerprint": data_fingerprint(paths, label_ids)})
        start = time.perf_counter()
        result = train(model, dataset, tcfg, run_dir, resume=resume, device=device, progress=progress)
        final = run_dir / "final"
        if rank == 0:
            summary = run_summary(result, time.perf_counter() - start)
            save_checkpoint(model.cpu(), final, p_texts, a_texts, text_encoder=encoder_name,
                            extra={"method": self.name, "config": config, "train": summary,
                                   "data_fingerprint": data_fingerprint(paths, label_ids)})
            print_loss_trend(console, summary, final)
        return final


MEDSLIP = MedslipMethod()
