"""Issue 19: fine-tuning / segmentation batches through DataLoader workers, the same whatever the worker count."""

from __future__ import annotations

import pickle

import pytest
import torch

from cxrbench.tasks.common import prepare
from cxrbench.tasks.finetune import EpochImages, FitSettings, _train_batches, epoch_order, fit
from cxrbench.tasks.specs import get_task
from medslip.augment import train_transform
from medslip.pretrain import sample_seed


@pytest.fixture()
def rsna(tmp_path, small_roots):
    return prepare(get_task("rsna-ft"), small_roots["rsna-pneumonia"], 64, tmp_path / "w", progress=False)


def test_batches_are_the_per_position_augmentations(rsna):
    """Position p of epoch e is augmented by the generator sample_seed(seed, e, p): the loader changes where the
    work runs, not what it computes (so the committed records stay what the per-sample loop produced)."""
    rows = rsna.rows("train").head(11)
    settings = FitSettings(batch_size=4, augment="light", min_steps_per_epoch=3)
    index = [rsna.cache.index_of(p) for p in rows["path"]]
    for epoch in (0, 2):
        order = epoch_order(len(rows), settings, seed=5, epoch=epoch)
        got = list(_train_batches(rsna, rows, settings, 5, epoch))
        assert [k for _, chunk in got for k in chunk] == order
        flat = torch.cat([images for images, _ in got])
        for p, k in enumerate(order):
            want = train_transform(rsna.cache[index[k]], rsna.cache.size, "light",
                                   torch.Generator().manual_seed(sample_seed(5, epoch, p)))
            assert torch.equal(flat[p], want), (epoch, p)


def test_the_dataset_does_not_pickle_the_image_cache(rsna):
    rows = rsna.rows("train")
    index = [rsna.cache.index_of(p) for p in rows["path"]]
    dataset = EpochImages(rsna.cache, index, list(range(len(index))), 64, "light", 0, 0)
    assert len(pickle.dumps(dataset)) < rsna.cache.pixels.nbytes / 4
    clone = pickle.loads(pickle.dumps(dataset))
    assert torch.equal(clone[3], dataset[3])


def _fitted(rsna, checkpoint, workers: int, seed: int = 3) -> dict[str, torch.Tensor]:
    """The weights after two epochs of full fine-tuning of the tiny checkpoint on 24 training images."""
    from cxrbench.models.medslip import MedslipAdapter
    from cxrbench.tasks.ft import EncoderClassifier, masked_bce

    torch.manual_seed(0)
    adapter = MedslipAdapter.from_checkpoint(checkpoint)
    model = EncoderClassifier(adapter.encoder(), len(rsna.spec.classes))
    rows = rsna.rows("train").head(24)
    labels = torch.tensor(rsna.labels(rows), dtype=torch.float32)
    settings = FitSettings(epochs=2, batch_size=8, augment="light", workers=workers, patience=5)
    calls = iter(range(100))  # an improving validation metric: both epochs run, the last is kept
    fit(model, rsna, rows, lambda idx: labels[idx], masked_bce, lambda m: float(next(calls)), settings, seed=seed,
        device=torch.device("cpu"), progress=False)
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_worker_count_does_not_change_the_fitted_weights(rsna, tiny_checkpoint):
    alone, two = _fitted(rsna, tiny_checkpoint, 0), _fitted(rsna, tiny_checkpoint, 2)
    assert alone.keys() == two.keys()
    for key in alone:
        assert torch.equal(alone[key], two[key]), key
    # the comparison can fail: another seed's order and augmentation give other weights
    other = _fitted(rsna, tiny_checkpoint, 0, seed=4)
    assert any(not torch.equal(alone[k], other[k]) for k in alone if alone[k].is_floating_point())


def test_the_loader_leaves_the_global_generator_alone(rsna):
    """A DataLoader draws a base seed per iterator; from the global RNG that would move dropout and the head's
    initialisation whenever the loader's settings change."""
    rows = rsna.rows("train").head(8)
    torch.manual_seed(11)
    before = torch.random.get_rng_state()
    list(_train_batches(rsna, rows, FitSettings(batch_size=4, workers=1), 0, 0))
    assert torch.equal(torch.random.get_rng_state(), before)
