"""Image-report pairs for contrastive pre-training: cached images + pre-tokenised report sections.

The report text of a study is its FINDINGS + IMPRESSION (:func:`medslip.triplets.sections`), as
in MeDSLIP's triplet extraction; a study whose report has neither section keeps the rest of the
report minus INDICATION / HISTORY / COMPARISON / TECHNIQUE.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch
from torch import Tensor
from torch.utils.data import Dataset

from medslip.augment import eval_transform, train_transform
from medslip.pretrain import ImageSource, sample_seed


def report_text(path: str | Path) -> str:
    """FINDINGS + IMPRESSION of one report file (whitespace collapsed); empty string when absent."""
    from medslip.triplets import sections

    path = Path(path)
    if not path.is_file():
        return ""
    return " ".join(sections(path.read_text(encoding="utf-8", errors="replace")).split())


class ImageReportDataset(Dataset):
    """One item per image: ``images`` (3 x S x S, normalised) and its report's ``input_ids`` (L).

    Args:
        images: indexable image source (``images[i]`` an H x W array, uint8 or float in [0, 1]).
        input_ids: N x L token ids of the reports, row ``i`` for ``images[i]``.
        image_size: S.
        augment: ``paper``, ``light`` or ``none`` (:mod:`medslip.augment`).
        seed: seeds the per-sample augmentation (with the epoch and index), so runs resume exactly.
    """

    def __init__(self, images: ImageSource, input_ids: Tensor, image_size: int, augment: str = "light",
                 seed: int = 0) -> None:
        if len(images) != len(input_ids):
            raise ValueError(f"{len(images)} images but {len(input_ids)} reports")
        self.images, self.input_ids = images, input_ids
        self.image_size, self.augment, self.seed = image_size, augment, seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.input_ids)

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        image = self.images[i]
        if self.augment == "none":
            x = eval_transform(image, self.image_size)
        else:
            g = torch.Generator().manual_seed(sample_seed(self.seed, self.epoch, i))
            x = train_transform(image, self.image_size, self.augment, g)
        return {"images": x, "input_ids": self.input_ids[i]}


def drop_empty(texts: Sequence[str]) -> list[int]:
    """Indices of the non-empty texts (studies without report text cannot be contrasted)."""
    return [i for i, t in enumerate(texts) if t.strip()]


__all__ = ["ImageReportDataset", "drop_empty", "report_text"]
