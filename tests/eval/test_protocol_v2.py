"""Protocol v2 end to end: each defect of issue 16 has a test here that fails against the v1 behaviour."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import torch

from cxrbench.data.splits import read_id_file
from cxrbench.models.base import ClassSpec, ModelEntry
from cxrbench.run import RunOptions
from cxrbench.tasks import ground
from cxrbench.tasks.common import prepare, region_masks
from cxrbench.tasks.specs import get_task
from medslip.augment import eval_transform


class _Oracle:
    """Scores = label / 2 + a pseudo-random number fixed by the image; maps = the true regions. Knows every image
    of the dataset, whatever split it lands in."""

    name = "oracle"
    settings = frozenset({"zs", "ground"})

    def __init__(self, data):
        self.image_size = data.cache.size
        self.lookup = {}
        table = data.table
        for i, path in enumerate(table["path"]):
            x = eval_transform(data.cache[data.cache.index_of(path)], data.cache.size)
            row = table.iloc[[i]]
            regions = {c.label: region_masks(data, row, c.label, self.image_size)[0]
                       for c in data.spec.classes} if data.spec.region else {}
            self.lookup[self._key(x)] = (data.labels(row)[0], regions)

    @staticmethod
    def _key(x):
        return hashlib.sha1(x.numpy().tobytes()).hexdigest()

    def to(self, device):
        return self

    def zero_shot(self, images, classes):
        rows = []
        for x in images:
            key = self._key(x)
            noise = np.random.default_rng(int(key[:8], 16)).random(len(classes))
            rows.append(np.nan_to_num(self.lookup[key][0], nan=0.0) / 2 + noise)
        return torch.tensor(np.stack(rows), dtype=torch.float32)

    def ground(self, images, classes):
        maps = [np.stack([self.lookup[self._key(x)][1][c.label] for c in classes]) for x in images]
        return torch.tensor(np.stack(maps), dtype=torch.float32)

    def describe(self):
        return {"name": self.name, "checkpoint_sha256": None, "weights": "trained"}


def _options(tmp_path, root, **kw):
    base = dict(data_root=root, out=tmp_path / "results", n_boot=50, epochs=1, batch_size=8, progress=False)
    base.update(kw)
    return RunOptions(**base)


def test_deterministic_zero_shot_swept_over_two_seeds_gives_one_cell_with_its_ci(tmp_path, small_roots,
                                                                                monkeypatch):
    """Issue 16: `0.596 ± 0.000 (n=2)`: v1 ran zero-shot once per seed and averaged the copies."""
    from cxrbench.leaderboard import write_leaderboard
    from cxrbench.models.registry import MODELS
    from cxrbench.sweep import run_sweep

    root = small_roots["rsna-pneumonia"]
    data = prepare(get_task("rsna-zs"), root, 64, tmp_path / "w", progress=False)
    oracle = _Oracle(data)
    monkeypatch.setitem(MODELS, "oracle", ModelEntry("oracle", "test", frozenset({"zs"}), lambda **_: oracle))
    paths = run_sweep(["oracle"], ["rsna-zs"], [1.0], [0, 1], options=_options(tmp_path, root))
    assert len(paths) == 1 and paths[0].name == "frac-none_seed-none.json"
    record = json.loads(paths[0].read_text())
    assert record["protocol"] == "cxrbench-eval/2" and record["seed"] is None
    assert record["evaluation"]["deterministic"] and record["data"]["kind"] == "synthetic"
    write_leaderboard(tmp_path / "results", tmp_path / "board")
    md = (tmp_path / "board" / "rsna-zs.md").read_text()
    row = next(ln for ln in md.splitlines() if ln.startswith("| oracle"))
    auc = row.split("|")[2].strip()
    assert auc.endswith("(n=1)") and "[" in auc and "±" not in row


def test_the_test_split_is_the_same_for_every_run_seed(tmp_path, small_roots, monkeypatch):
    """Issue 16: for RSNA and SIIM (no official test split) v1 redrew the test split with the run seed."""
    import cxrbench.run as run_module

    def stub(adapter, data, **kw):
        return {"summary": {"auc": {"value": 0.5, "ci_low": 0.4, "ci_high": 0.6}}, "metrics": {},
                "selection": {"chosen_on": "val"}}

    monkeypatch.setitem(run_module.RUNNERS, "ft", stub)
    root = small_roots["rsna-pneumonia"]
    data = prepare(get_task("rsna-ft"), root, 64, tmp_path / "w", progress=False)
    monkeypatch.setitem(__import__("cxrbench.models.registry", fromlist=["MODELS"]).MODELS, "oracle-ft",
                        ModelEntry("oracle-ft", "test", frozenset({"ft"}), lambda **_: _FtOracle(data)))
    paths = run_module.run("oracle-ft", "rsna-ft", [0.5], [0, 1, 2], _options(tmp_path, root))
    records = [json.loads(p.read_text()) for p in paths]
    assert len(records) == 3
    assert len({r["data"]["splits"]["test"]["sha256"] for r in records}) == 1
    assert len({r["data"]["splits"]["val"]["sha256"] for r in records}) == 1
    assert len({r["data"]["subset"]["sha256"] for r in records}) == 3  # the subset is what the run seed draws
    assert all(r["data"]["split_seed"] == 0 for r in records)
    other = run_module.run("oracle-ft", "rsna-ft", [0.5], [0], _options(tmp_path / "s", root, split_seed=5))
    assert json.loads(other[0].read_text())["data"]["splits"]["test"]["sha256"] != \
        records[0]["data"]["splits"]["test"]["sha256"]


class _FtOracle(_Oracle):
    settings = frozenset({"ft"})

    def __init__(self, data):
        self.image_size = data.cache.size


def test_nih_grounding_evaluates_every_positive_test_image_at_a_declared_threshold(tmp_path, small_roots):
    """Issue 16: v1 chose the threshold on 20 % of the test patients ("carved") and evaluated the rest."""
    data = prepare(get_task("nih-ground"), small_roots["nih-cxr14"], 64, tmp_path / "w", progress=False)
    out = ground.run(_Oracle(data), data, out_dir=tmp_path, n_boot=20)
    test = data.rows("test")
    expected, pairs = set(), 0
    for c in data.spec.classes:
        rows = test[test[c.label] == 1.0].reset_index(drop=True)
        if rows.empty:
            continue
        keep = region_masks(data, rows, c.label, 64).reshape(len(rows), -1).any(1)
        expected |= set(rows.loc[keep, "image_id"].astype(str))
        pairs += int(keep.sum())
    assert expected and out["n_eval"]["test_pairs"] == pairs
    evaluated = out["n_eval"]["evaluated_set"]
    assert set(read_id_file(evaluated["path"])) == expected and evaluated["n_images"] == len(expected)
    # no validation region (as on real NIH): the fixed, declared threshold; the pointing game is the headline
    assert out["n_eval"]["val_pairs"] == 0
    assert out["selection"]["chosen_on"] == "fixed" and out["selection"]["threshold"] == ground.FIXED_THRESHOLD
    assert out["selection"]["headline"] == "pointing_game" and out["summary"]["pointing_game"]["value"] == 1.0


def test_threshold_on_test_is_honoured_and_published_postprocessing_is_recorded(tmp_path, small_roots):
    from cxrbench.models.medslip import MedslipAdapter

    data = prepare(get_task("siim-ground"), small_roots["siim-acr"], 64, tmp_path / "w", progress=False)
    oracle = _Oracle(data)
    assert ground.run(oracle, data, out_dir=tmp_path, n_boot=10)["selection"]["chosen_on"] == "val"
    on_test = ground.run(oracle, data, out_dir=tmp_path, n_boot=10, threshold_on="test")
    assert on_test["selection"]["chosen_on"] == "test" and on_test["selection"]["threshold_on"] == "test"
    with pytest.raises(ValueError, match="declares no published grounding"):
        ground.run(oracle, data, out_dir=tmp_path, n_boot=10, postprocess="published")
    oracle.published_grounding = {"published": MedslipAdapter.published_grounding["published"]}
    published = ground.run(oracle, data, out_dir=tmp_path, n_boot=10, postprocess="published")
    assert published["selection"]["postprocess"] == "published" and published["selection"]["threshold"] == 0.0
    assert "batch" in published["selection"]["postprocess_rule"]
    assert published["summary"]["dice"]["value"] == pytest.approx(1.0)  # oracle maps: regions, > 0 inside
    with pytest.raises(ValueError, match="published-anatomy"):
        ground.run(oracle, data, out_dir=tmp_path, n_boot=10, postprocess="published-anatomy")


def test_published_maps_use_the_batch_maximum_and_patch_repetition():
    from cxrbench.models.medslip import MedslipAdapter

    class Grid:
        def ground(self, images, classes):
            g = torch.arange(images.shape[0] * 4, dtype=torch.float32).reshape(-1, 1, 2, 2)
            return g

    rule = MedslipAdapter.published_grounding["published"]
    maps = ground._published_maps(Grid(), torch.zeros(3, 3, 8, 8), None, 8, rule)
    assert maps.shape == (3, 8, 8) and maps.max() == 1.0  # divided by the maximum over the batch (11)
    torch.testing.assert_close(maps[0, :4, :4], torch.zeros(4, 4))
    torch.testing.assert_close(maps[2, 4:, 4:], torch.ones(4, 4))
    torch.testing.assert_close(maps[1, 0, 4], torch.tensor(5.0 / 11))


def test_vocabulary_probabilities_stay_when_a_description_query_is_added(tiny_checkpoint):
    """Issue 16: v1 decoded [description, vocabulary class] as a 2-query set instead of the 75-query book; with a
    decoder whose self-attention matters, the vocabulary class's probability moved."""
    from cxrbench.models.medslip import MedslipAdapter

    adapter = MedslipAdapter.from_checkpoint(tiny_checkpoint)
    with torch.no_grad():
        for layer in adapter.model.decoder_pathology.layers:
            layer.self_attn.in_proj_weight.mul_(5.0)
            layer.self_attn.out_proj.weight.mul_(5.0)
    torch.manual_seed(1)
    images = torch.randn(3, 3, 64, 64)
    vocab = [ClassSpec("Effusion", "effusion"), ClassSpec("Pneumothorax", "pneumothorax")]
    covid = ClassSpec("COVID-19", description="bilateral peripheral ground-glass opacities")
    alone = adapter.zero_shot(images, vocab)
    mixed = adapter.zero_shot(images, [covid, *vocab])
    torch.testing.assert_close(mixed[:, 1:], alone, rtol=0, atol=1e-7)
    # the self-attention is not trivial: the query set does change scores when decoded together
    book = adapter.model.pathology_book
    with torch.no_grad():
        short = adapter.model(images, need_attention=False,
                              pathology_queries=adapter.model.embed_queries(book[:2]))["logits_pathology"]
        full = adapter.model(images, need_attention=False)["logits_pathology"]
    assert (short.softmax(-1)[:, :2, 1] - full.softmax(-1)[:, :2, 1]).abs().max() > 1e-3
    # the description class is read from the book + its own query, the same alone or with others
    torch.testing.assert_close(adapter.zero_shot(images, [covid])[:, 0], mixed[:, 0], rtol=0, atol=1e-7)


def test_finetuning_with_an_undefined_validation_metric_fails(tmp_path, small_roots, tiny_checkpoint):
    """Issue 16: v1 evaluated the initial weights (best_epoch -1) when validation AUC was never defined."""
    from cxrbench.models.medslip import MedslipAdapter
    from cxrbench.tasks import ft
    from cxrbench.tasks.finetune import FitSettings, ValidationUndefined

    spec = get_task("rsna-ft")
    data = prepare(spec, small_roots["rsna-pneumonia"], 64, tmp_path / "w", progress=False)
    val = data.table["split"] == "val"
    data.table.loc[val, list(spec.labels)] = 0.0  # no validation positive: AUC undefined every epoch
    adapter = MedslipAdapter.from_checkpoint(tiny_checkpoint)
    rows = data.rows("train").head(8)
    with pytest.raises(ValidationUndefined, match="never defined"):
        ft.run(adapter, data, out_dir=tmp_path, n_boot=10, seed=0, label_frac=1.0, device=torch.device("cpu"),
               subset_rows=rows, settings=FitSettings(epochs=1, batch_size=8, min_steps_per_epoch=1),
               progress=False)


def test_a_batch_of_unknown_labels_contributes_an_exact_zero():
    from cxrbench.tasks.ft import masked_bce

    logits = torch.randn(4, 3, requires_grad=True)
    loss = masked_bce(logits, torch.full((4, 3), float("nan")))
    assert loss.item() == 0.0
    loss.backward()
    assert torch.equal(logits.grad, torch.zeros(4, 3))
    partial = torch.full((4, 3), float("nan"))
    partial[0, 0] = 1.0
    assert torch.isfinite(masked_bce(logits, partial))


def test_finetuning_honours_threshold_on_test(tmp_path, small_roots, tiny_checkpoint, monkeypatch):
    """Issue 16: v1 ft ignored --threshold-on test silently."""
    from cxrbench.models.medslip import MedslipAdapter
    from cxrbench.tasks import ft
    from cxrbench.tasks.finetune import FitResult, FitSettings

    monkeypatch.setattr(ft, "fit", lambda *a, **k: FitResult(0, 0.5, []))
    data = prepare(get_task("rsna-ft"), small_roots["rsna-pneumonia"], 64, tmp_path / "w", progress=False)
    adapter = MedslipAdapter.from_checkpoint(tiny_checkpoint)
    out = ft.run(adapter, data, out_dir=tmp_path, n_boot=10, seed=0, label_frac=1.0, device=torch.device("cpu"),
                 subset_rows=data.rows("train"), settings=FitSettings(epochs=1), progress=False,
                 threshold_on="test")
    assert out["selection"]["chosen_on"] == "test" and out["metrics"]["threshold_on"] == "test"
