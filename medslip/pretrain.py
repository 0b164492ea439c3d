"""Pre-training data: images + anatomy x observation matrices -> MeDSLIP batches.

Images come from any indexable source returning an H x W array (uint8 or float in [0, 1]); the
harness passes its preprocessing cache. Nothing here imports :mod:`cxrbench`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator, Protocol, Sequence

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset, Sampler

from medslip.augment import eval_transform, train_transform
from medslip.sampling import supervision_from_matrix


class ImageSource(Protocol):
    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> np.ndarray: ...


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """A per-(seed, epoch, sample) generator seed, stable across processes and workers."""
    return (seed * 1_000_003 + epoch * 10_007 + index * 7919 + 12345) % (2**63 - 1)


class PretrainDataset(Dataset):
    """One item per study: normalised image, the matrix, existence labels and ProtoCL indices.

    Args:
        images: indexable image source, ``images[i]`` an H x W array.
        matrices: N x 51 x 75 array in {-1, 0, 1}, or an ``(index array, adjacency array)`` pair
            as in the published files (``labels_id`` into ``landmark_observation_adj_mtx.npy``).
        image_size: output size S (images are S x S).
        augment: ``paper``, ``light`` or ``none``.
    """

    def __init__(self, images: ImageSource, matrices, image_size: int, augment: str = "paper",
                 num_negatives: int = 7, seed: int = 0) -> None:
        if isinstance(matrices, tuple):
            self.index, self.adjacency = np.asarray(matrices[0]), matrices[1]
        else:
            self.index, self.adjacency = np.arange(len(matrices)), matrices
        if len(images) != len(self.index):
            raise ValueError(f"{len(images)} images but {len(self.index)} matrices")
        self.images = images
        self.image_size = image_size
        self.augment = augment
        self.num_negatives = num_negatives
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        g = torch.Generator().manual_seed(sample_seed(self.seed, self.epoch, i))
        image = self.images[i]
        if self.augment == "none":
            x = eval_transform(image, self.image_size)
        else:
            x = train_transform(image, self.image_size, self.augment, g)
        matrix = torch.from_numpy(np.asarray(self.adjacency[int(self.index[i])], dtype=np.int64))
        item = supervision_from_matrix(matrix, self.num_negatives, g)
        item["images"] = x
        return item


class ResumableSampler(Sampler[int]):
    """Seeded per-epoch permutation, sharded by rank, that can start part-way through an epoch.

    Every rank sees ``len(dataset) // (world_size * batch_size)`` full batches per epoch
    (the remainder is dropped, as ``drop_last`` does).
    """

    def __init__(self, size: int, batch_size: int, seed: int = 0, rank: int = 0, world_size: int = 1) -> None:
        self.size, self.batch_size, self.seed = size, batch_size, seed
        self.rank, self.world_size = rank, world_size
        self.epoch = 0
        self.start_batch = 0
        self.batches_per_epoch = size // (world_size * batch_size)
        if self.batches_per_epoch == 0:
            raise ValueError(f"dataset of {size} items is smaller than one global batch "
                             f"({world_size} x {batch_size})")

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        self.epoch, self.start_batch = epoch, start_batch

    def __iter__(self) -> Iterator[int]:
        g = torch.Generator().manual_seed(self.seed * 7_919 + self.epoch)
        order = torch.randperm(self.size, generator=g)
        per_rank = self.batches_per_epoch * self.batch_size
        mine = order[: per_rank * self.world_size][self.rank :: self.world_size]
        return iter(mine[self.start_batch * self.batch_size :].tolist())

    def __len__(self) -> int:
        return (self.batches_per_epoch - self.start_batch) * self.batch_size


class RunBatchSampler(Sampler[list[int]]):
    """Every remaining batch of a run, epoch after epoch, for one DataLoader that lives the whole run.

    Batches follow ``sampler`` (a :class:`ResumableSampler`) epoch by epoch, starting at
    ``start_batch`` of ``start_epoch``; a batch never straddles two epochs. Each item is coded as
    ``epoch * len(dataset) + index`` so that :class:`EpochIndexed` can give the worker processes
    the epoch of every item: with one iterator for the whole run the workers persist across
    epochs, and the per-epoch augmentation seeds stay exactly those of a fresh loader per epoch.
    """

    def __init__(self, sampler: ResumableSampler, epochs: int, start_epoch: int = 0, start_batch: int = 0) -> None:
        self.sampler, self.epochs = sampler, epochs
        self.start_epoch, self.start_batch = start_epoch, start_batch

    def __iter__(self) -> Iterator[list[int]]:
        size, batch = self.sampler.size, self.sampler.batch_size
        for epoch in range(self.start_epoch, self.epochs):
            self.sampler.set_epoch(epoch, self.start_batch if epoch == self.start_epoch else 0)
            indices = list(self.sampler)
            for lo in range(0, len(indices) - batch + 1, batch):
                yield [epoch * size + i for i in indices[lo:lo + batch]]

    def __len__(self) -> int:
        per_epoch = self.sampler.batches_per_epoch
        remaining = (self.epochs - self.start_epoch) * per_epoch - self.start_batch
        return max(0, remaining)


class EpochIndexed(Dataset):
    """Decodes :class:`RunBatchSampler`'s ``epoch * n + index`` and sets the epoch before reading."""

    def __init__(self, dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, code: int):
        epoch, index = divmod(int(code), len(self.dataset))
        self.dataset.set_epoch(epoch)  # this process's copy (a worker's, or the main one)
        return self.dataset[index]


def read_published_split(json_path: str | Path, prefix_map: Sequence[tuple[str, str]] = ()) -> tuple[list[str], np.ndarray]:
    """Image paths and ``labels_id`` rows from a published ``train.json`` / ``valid.json`` / ``test.json``.

    ``prefix_map`` rewrites path prefixes (old, new), for files made on another machine.
    """
    data = json.loads(Path(json_path).read_text())
    paths, ids = [], []
    for path, entry in data.items():
        for old, new in prefix_map:
            if path.startswith(old):
                path = new + path[len(old):]
                break
        paths.append(path)
        ids.append(int(entry["labels_id"]))
    return paths, np.asarray(ids, dtype=np.int64)
