"""The supervised loop shared by fine-tuning and segmentation: AdamW, selection and early stopping
on a validation metric (never on test), seeded data order and augmentation."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import pandas as pd
import torch
from rich.progress import Progress
from torch import Tensor, nn

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


class ValidationUndefined(ValueError):
    """A fine-tuning or segmentation run whose validation metric was never defined."""


@dataclass
class FitResult:
    best_epoch: int
    best_val: float | None
    history: list[dict[str, Any]] = field(default_factory=list)


def _train_batches(data: TaskData, rows: pd.DataFrame, settings: FitSettings, seed: int, epoch: int):
    n = len(rows)
    per_epoch = max(n, settings.min_steps_per_epoch * settings.batch_size if n < settings.batch_size else n)
    g = torch.Generator().manual_seed(seed * 1009 + epoch)
    order = torch.cat([torch.randperm(n, generator=g) for _ in range(-(-per_epoch // n))])[:per_epoch].tolist()
    index = [data.cache.index_of(p) for p in rows["path"]]
    for start in range(0, len(order), settings.batch_size):
        chunk = order[start : start + settings.batch_size]
        images = []
        for k in chunk:
            gen = torch.Generator().manual_seed(sample_seed(seed, epoch, start + len(images)))
            images.append(train_transform(data.cache[index[k]], data.cache.size, settings.augment, gen))
        yield torch.stack(images), chunk


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
            for images, chunk in _train_batches(data, rows, settings, seed, epoch):
                out = model(images.to(device))
                loss = loss_fn(out, targets(chunk).to(device))
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                losses.append(float(loss.detach()))
            model.eval()
            val = validate(model)
            history.append({"epoch": epoch, "train_loss": float(np.mean(losses)) if losses else None, "val": val})
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
