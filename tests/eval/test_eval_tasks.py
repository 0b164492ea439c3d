"""End-to-end evaluation on synthetic data, and the honesty checks of the protocol."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import torch

from cxrbench.models.base import ClassSpec, Encoder
from cxrbench.results import validate_record
from cxrbench.run import RunOptions, run
from cxrbench.tasks import ground, zs
from cxrbench.tasks.common import prepare, region_masks
from cxrbench.tasks.specs import TASKS, get_task
from medslip.augment import eval_transform


def _options(tmp_path, root, **kw):
    base = dict(data_root=root, out=tmp_path / "results", n_boot=50, epochs=1, batch_size=8, progress=False)
    base.update(kw)
    return RunOptions(**base)


#: One task per setting runs in the default suite; every task runs with ``-m slow`` (make test-all).
FAST_TASKS = ("covidx-zs", "siim-ground", "rsna-ft", "siim-seg")


@pytest.mark.parametrize("task", [t if t in FAST_TASKS else pytest.param(t, marks=pytest.mark.slow)
                                  for t in sorted(TASKS)])
def test_every_task_runs_and_its_record_validates(task, tmp_path, small_roots, tiny_checkpoint):
    spec = get_task(task)
    frac = [0.5] if spec.setting in ("ft", "seg") else [None]
    paths = run("medslip", task, frac, [0], _options(tmp_path, small_roots[spec.dataset], checkpoint=tiny_checkpoint))
    record = json.loads(paths[0].read_text())
    validate_record(record)
    assert record["task"]["name"] == task and record["model"]["checkpoint_sha256"]
    assert set(record["summary"]) == set(spec.metrics)
    assert record["data"]["splits"]["test"]["n_images"] > 0
    if spec.setting in ("ft", "seg"):
        assert record["data"]["subset"]["fraction"] == 0.5 and len(record["data"]["subset"]["sha256"]) == 64
        assert record["selection"]["chosen_on"] == "val"
    for artifact in record["artifacts"]:
        assert (paths[0].parent / artifact).exists()


def test_existing_record_is_not_overwritten_silently(tmp_path, small_roots, tiny_checkpoint):
    opts = _options(tmp_path, small_roots["rsna-pneumonia"], checkpoint=tiny_checkpoint)
    first = run("medslip", "rsna-zs", [None], [0], opts)[0]
    before = first.read_bytes()
    with pytest.raises(FileExistsError, match="--skip-existing"):
        run("medslip", "rsna-zs", [None], [0], opts)
    opts.skip_existing = True
    assert run("medslip", "rsna-zs", [None], [0], opts) == [first] and first.read_bytes() == before


def test_bad_label_fraction_is_refused(tmp_path, small_roots, tiny_checkpoint):
    from cxrbench.data.subsets import LabelFractionError

    with pytest.raises((LabelFractionError, ValueError)):
        run("medslip", "siim-seg", [1.5], [0], _options(tmp_path, small_roots["siim-acr"], checkpoint=tiny_checkpoint))


# ----------------------------------------------------------------------------- protocol checks
class _Oracle:
    """Test double: scores are a function of the true labels (or constant), maps are the true regions."""

    name = "oracle"
    settings = frozenset({"zs", "ground"})

    def __init__(self, data, mode: str = "truth"):
        self.image_size = data.cache.size
        self.mode = mode
        self.lookup = {}
        for split in ("val", "test"):
            rows = data.rows(split)
            labels = data.labels(rows)
            for i, path in enumerate(rows["path"]):
                x = eval_transform(data.cache[data.cache.index_of(path)], data.cache.size)
                regions = {c.label: region_masks(data, rows.iloc[[i]], c.label, self.image_size)[0]
                           for c in data.spec.classes} if data.spec.region else {}
                self.lookup[self._key(x)] = (labels[i], regions)

    @staticmethod
    def _key(x):
        return hashlib.sha1(x.numpy().tobytes()).hexdigest()

    def to(self, device):
        return self

    def zero_shot(self, images, classes):
        rows = []
        for x in images:
            labels, _ = self.lookup[self._key(x)]
            rows.append(np.full(len(classes), 0.5) if self.mode == "constant" else np.nan_to_num(labels, nan=0.0))
        return torch.tensor(np.stack(rows), dtype=torch.float32)

    def ground(self, images, classes):
        maps = [np.stack([self.lookup[self._key(x)][1][c.label] for c in classes]) for x in images]
        return torch.tensor(np.stack(maps), dtype=torch.float32)  # already at image size (h = w = S)

    def encoder(self) -> Encoder:  # pragma: no cover - not used
        raise NotImplementedError

    def describe(self):
        return {"name": self.name}


@pytest.fixture(scope="module")
def nih_data(small_roots, tmp_path_factory):
    return prepare(get_task("nih-zs"), small_roots["nih-cxr14"], 64, tmp_path_factory.mktemp("nih"), progress=False)


def test_ground_truth_scores_auc_one_and_constant_scores_auc_half(nih_data, tmp_path):
    perfect = zs.run(_Oracle(nih_data), nih_data, out_dir=tmp_path, n_boot=20)
    assert perfect["summary"]["auc"]["value"] == pytest.approx(1.0)
    assert perfect["summary"]["f1"]["value"] == pytest.approx(1.0)
    constant = zs.run(_Oracle(nih_data, "constant"), nih_data, out_dir=tmp_path, n_boot=20)
    assert constant["summary"]["auc"]["value"] == pytest.approx(0.5)


def test_permuting_test_labels_changes_numbers_but_not_thresholds(nih_data, tmp_path):
    oracle = _Oracle(nih_data)
    base = zs.run(oracle, nih_data, out_dir=tmp_path, n_boot=20)
    test_index = nih_data.table.index[nih_data.table["split"] == "test"]
    labels = list(nih_data.spec.labels)
    rng = np.random.default_rng(0)
    shuffled = nih_data.table.copy()
    shuffled.loc[test_index, labels] = shuffled.loc[test_index, labels].to_numpy()[rng.permutation(len(test_index))]
    original = nih_data.table
    try:
        nih_data.table = shuffled  # the model still predicts the original labels
        permuted = zs.run(oracle, nih_data, out_dir=tmp_path, n_boot=20)
    finally:
        nih_data.table = original
    assert permuted["summary"]["auc"]["value"] < base["summary"]["auc"]["value"] - 0.1
    assert permuted["selection"]["thresholds"] == base["selection"]["thresholds"]


def test_grounding_oracle_scores_dice_one(small_roots, tmp_path):
    data = prepare(get_task("siim-ground"), small_roots["siim-acr"], 64, tmp_path / "w", progress=False)
    out = ground.run(_Oracle(data), data, out_dir=tmp_path, n_boot=20)
    assert out["summary"]["dice"]["value"] == pytest.approx(1.0)
    assert out["summary"]["pointing_game"]["value"] == pytest.approx(1.0)
    assert out["selection"]["chosen_on"] == "val"


def test_published_pth_runs_nih_zs_through_the_same_path(tmp_path, small_roots, tiny_checkpoint):
    from medslip.books import pathology_texts
    from medslip.checkpoint import load_checkpoint

    model = load_checkpoint(tiny_checkpoint)
    pth = tmp_path / "checkpoint_state.pth"
    torch.save({"model": {"module." + k: v for k, v in model.state_dict().items()}, "epoch": 1}, pth)
    description = tmp_path / "observation explanation.json"
    description.write_text(json.dumps({f"obs{i}": t for i, t in enumerate(pathology_texts())}))
    root = small_roots["nih-cxr14"]
    published = run("medslip", "nih-zs", [None], [0],
                    _options(tmp_path / "b", root, checkpoint=pth, description_file=description,
                             text_encoder="tiny-random(width=32,layers=2,heads=2,seed=0)", image_size=64))[0]
    record = json.loads(published.read_text())
    validate_record(record)
    assert record["model"]["source"] == "published-pth" and record["model"]["image_size"] == 64
    # same weights, and books re-encoded from the description file (the published loader encodes them with 64
    # tokens): the same probabilities as our checkpoint given books encoded the same way
    from cxrbench.models.medslip import MedslipAdapter
    from medslip.books import encode_books
    from medslip.text import tiny_text_encoder

    ours = MedslipAdapter.from_checkpoint(tiny_checkpoint)
    ours.model.set_books(*encode_books(tiny_text_encoder(width=32, max_length=64)))
    theirs = MedslipAdapter.from_checkpoint(pth, image_size=64, description_file=description,
                                            text_encoder="tiny-random(width=32,layers=2,heads=2,seed=0)")
    images = torch.randn(3, 3, 64, 64)
    specs = list(get_task("nih-zs").classes)
    torch.testing.assert_close(theirs.zero_shot(images, specs), ours.zero_shot(images, specs), rtol=1e-4, atol=1e-5)


def test_unseen_class_gets_a_query_from_its_description(tiny_checkpoint):
    from cxrbench.models.medslip import MedslipAdapter

    adapter = MedslipAdapter.from_checkpoint(tiny_checkpoint)
    images = torch.randn(2, 3, 64, 64)
    specs = [ClassSpec("COVID-19", description="bilateral peripheral opacities"), ClassSpec("Effusion", "effusion")]
    probs = adapter.zero_shot(images, specs)
    assert probs.shape == (2, 2) and ((probs > 0) & (probs < 1)).all()
    again = adapter.zero_shot(images, [ClassSpec("Effusion", "effusion")])
    torch.testing.assert_close(again[:, 0], probs[:, 1])
