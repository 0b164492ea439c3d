"""The supervised loop shared by fine-tuning and segmentation: AdamW, selection and early stopping
on a validation metric (never on test), seeded data order and augmentation.

Training batches come from a ``DataLoader`` over the positions of an epoch's order. Position ``p`` of epoch
``e`` is augmented with its own generator seeded by ``sample_seed(seed, e, p)``, so an image's augmentation
depends on (seed, epoch, position) only: the batches, and therefore the fitted weights, are the same whatever
the number of workers (tested). Workers open the memory-mapped image cache themselves (nothing large is
pickled to them); on CUDA the batches are pinned and copied without blocking, and the loss is read back once
per epoch, not once per step.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import pandas as pd
import torch
from rich.progress import Progress
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from cxrbench.tasks.common import TaskData
from medslip.augment import train_transform
from medslip.pretrain import sample_seed


@dataclass
class FitSettings:
    epochs: int = 10
    batch_size: int = 16
    lr: float = 1e-4
    weight_decay: float = 1e-4
    patience: int = 3
    augment: str = "light"
    min_steps_per_epoch: int = 8  # tiny label fractions: repeat the subset so each epoch has some steps
    workers: int = 0  # DataLoader worker processes for the training batches (results do not depend on it)


def default_workers(device: torch.device | str) -> int:
    """Training-batch workers when the user says nothing: none on CPU (the model competes for the same cores),
    up to 8 (one core left for the main process) on an accelerator."""
    if torch.device(device).type == "cpu":
        return 0
    return max(0, min(8, (os.cpu_count() or 1) - 1))


class ValidationUndefined(ValueError):
    """A fine-tuning or segmentation run whose validation metric was never defined."""


@dataclass
class FitResult:
    best_epoch: int
    best_val: float | None
    history: list[dict[str, Any]] = field(default_factory=list)


def epoch_order(n: int, settings: FitSettings, seed: int, epoch: int) -> list[int]:
    """Row positions (into the training rows) of one epoch, in order; a subset smaller than a batch is repeated
    until the epoch has ``min_steps_per_epoch`` steps."""
    per_epoch = max(n, settings.min_steps_per_epoch * settings.batch_size if n < settings.batch_size else n)
    g = torch.Generator().manual_seed(seed * 1009 + epoch)
    return torch.cat([torch.randperm(n, generator=g) for _ in range(-(-per_epoch // n))])[:per_epoch].tolist()


class EpochImages(Dataset):
    """Item ``p`` is the augmented image at position ``p`` of one epoch's order (see the module docstring).

    Holds the cache's file name and shape, not its pixels: each worker maps the file on first use.
    """

    def __init__(self, cache, rows_in_cache: list[int], order: list[int], size: int, policy: str, seed: int,
                 epoch: int) -> None:
        self.pixels_file = cache.directory / "pixels.u8"
        self.shape = (len(cache), cache.size, cache.size)
        self.rows = [rows_in_cache[k] for k in order]
        self.size, self.policy, self.seed, self.epoch = size, policy, seed, epoch
        self._pixels = cache.pixels if not isinstance(cache.pixels, np.memmap) else None

    def __len__(self) -> int:
        return len(self.rows)

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_pixels": None if isinstance(self._pixels, np.memmap) else self._pixels}

    def __getitem__(self, p: int) -> Tensor:
        if self._pixels is None:
            self._pixels = np.memmap(self.pixels_file, dtype=np.uint8, mode="r", shape=self.shape)
        gen = torch.Generator().manual_seed(sample_seed(self.seed, self.epoch, p))
        return train_transform(self._pixels[self.rows[p]], self.size, self.policy, gen)


def _train_batches(data: TaskData, rows: pd.DataFrame, settings: FitSettings, seed: int, epoch: int,
                   pin_memory: bool = False):
    """Yields ``(images, chunk)``: a batch of augmented images and the row positions it holds."""
    order = epoch_order(len(rows), settings, seed, epoch)
    index = [data.cache.index_of(p) for p in rows["path"]]
    dataset = EpochImages(data.cache, index, order, data.cache.size, settings.augment, seed, epoch)
    batches = [list(range(start, min(start + settings.batch_size, len(order))))
               for start in range(0, len(order), settings.batch_size)]
    # its own generator: a DataLoader draws a base seed per epoch, which must not consume the global RNG
    # (that would move the model's dropout and initialisation with the loader's settings)
    loader = DataLoader(dataset, batch_sampler=batches, num_workers=settings.workers, pin_memory=pin_memory,
                        generator=torch.Generator().manual_seed(seed), persistent_workers=False)
    for batch, positions in zip(loader, batches):
        yield batch, [order[p] for p in positions]


def fit(model: nn.Module, data: TaskData, rows: pd.DataFrame, targets: Callable[[list[int]], Tensor],
        loss_fn: Callable[[Tensor, Tensor], Tensor], validate: Callable[[nn.Module], float | None],
        settings: FitSettings, seed: int, device: torch.device, progress: bool = True,
        trainable: list[nn.Parameter] | None = None) -> FitResult:
    """Train ``model``; after each epoch ``validate`` returns the selection metric (higher is better).

    The best epoch's weights are loaded back into ``model`` at the end. Raises :class:`ValidationUndefined`
    when the metric was never defined (for example no positive validation image): the run then has no
    selected checkpoint, and evaluating the untrained weights instead would report a number nobody chose.
    """
    torch.manual_seed(seed)
    params = trainable if trainable is not None else [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=settings.lr, weight_decay=settings.weight_decay)
    best_state, best_val, best_epoch, stale = copy.deepcopy(model.state_dict()), None, -1, 0
    history: list[dict[str, Any]] = []
    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task("fine-tune", total=settings.epochs)
        for epoch in range(settings.epochs):
            model.train()
            losses = []
            cuda = torch.device(device).type == "cuda"
            for images, chunk in _train_batches(data, rows, settings, seed, epoch, pin_memory=cuda):
                out = model(images.to(device, non_blocking=cuda))
                loss = loss_fn(out, targets(chunk).to(device, non_blocking=cuda))
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                losses.append(loss.detach())  # read back once per epoch: no host sync per step
            model.eval()
            val = validate(model)
            train_loss = float(np.mean([float(x) for x in torch.stack(losses).cpu()])) if losses else None
            history.append({"epoch": epoch, "train_loss": train_loss, "val": val})
            bar.update(task, advance=1, description=f"fine-tune val={val if val is None else round(val, 4)}")
            if val is not None and (best_val is None or val > best_val):
                best_state, best_val, best_epoch, stale = copy.deepcopy(model.state_dict()), val, epoch, 0
            else:
                stale += 1
                if stale > settings.patience:
                    break
    if best_val is None:
        raise ValidationUndefined(
            f"the validation metric was never defined in {len(history)} epoch(s) (for example the validation "
            "split has no positive image of any class): no checkpoint can be selected, and the untrained weights "
            "are not evaluated")
    model.load_state_dict(best_state)
    model.eval()
    return FitResult(best_epoch, best_val, history)
