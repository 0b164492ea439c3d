"""The diagnostics on hand-built models whose behaviour is known: they must give the numbers it implies."""

from __future__ import annotations

import hashlib

import numpy as np
import torch

from cxrbench.diagnose import focal_class_specs
from cxrbench.diagnose.probes import linear_probe, split_groups
from cxrbench.diagnose.synthetic import diagnose_synthetic
from cxrbench.synth.counterfactual import VARIANTS
from medslip.augment import eval_transform

SIZE = 32  # the constructed models' input size


class Constructed:
    """A model built by hand from the generator's truth: it recognises each render it is shown (by its bytes)
    and answers from that render's finding, masks and pixels.

    ``reader`` "finding": class score = 0.9 when the class's finding is present, wherever it is, else 0.1;
    ``reader`` "left-lung": every class score = 0.1 + 0.8 * min(1, 20 * mean |image - finding-free image|) over
    the patient's left lung only (the pixels it reads). Class maps = the finding mask (at the render size), features
    = pure noise (``features`` "noise") or one-hot class + noise (``features`` "class").
    """

    name = "constructed"
    image_size = SIZE
    settings = frozenset({"zs", "ground"})

    def __init__(self, cset, reader: str, features: str = "noise") -> None:
        self.cset, self.reader, self.features = cset, reader, features
        self.names = list(cset.params["classes"])
        self.index = {}
        for i, case in enumerate(cset.cases):
            for v in VARIANTS:
                self.index[self._key(eval_transform(case.renders[v].image, SIZE))] = (i, v)
        self.rng = np.random.default_rng(0)

    @staticmethod
    def _key(x: torch.Tensor) -> str:
        return hashlib.sha256(x.contiguous().numpy().tobytes()).hexdigest()

    def _lookup(self, images):
        return [self.index[self._key(x)] for x in images]

    def to(self, device):
        return self

    def describe(self):
        return {"name": self.name, "checkpoint": None, "checkpoint_sha256": None}

    def zero_shot(self, images, classes):
        out = np.full((len(images), len(classes)), 0.1)
        for j, (i, v) in enumerate(self._lookup(images)):
            case = self.cset.cases[i]
            r = case.renders[v]
            if self.reader == "finding":
                if r.finding is not None:
                    out[j, self.names.index(r.finding)] = 0.9
            else:
                lung = case.regions["left_lung"]
                diff = np.abs(r.image.astype(float) - case.renders["absent"].image.astype(float))[lung].mean()
                out[j] = 0.1 + 0.8 * min(1.0, 20 * diff)
        return torch.tensor(out, dtype=torch.float32)

    def streams(self, images, classes):
        hits = self._lookup(images)
        size = self.cset.size
        maps = torch.zeros(len(images), len(classes), size, size)
        feats = self.rng.normal(size=(len(images), 64))
        for j, (i, v) in enumerate(hits):
            r = self.cset.cases[i].renders[v]
            if r.finding is not None:
                maps[j, :] = torch.from_numpy(r.mask.astype(np.float32))
                if self.features == "class":
                    feats[j, self.names.index(r.finding)] += 4.0
        return {"what": {"role": "what", "features": torch.tensor(feats, dtype=torch.float32), "class_maps": maps}}


_RUNS: dict = {}


def _run(cset, reader, features="noise"):
    if (reader, features) not in _RUNS:
        adapter = Constructed(cset, reader, features)
        classes = focal_class_specs(list(cset.params["classes"]))
        _RUNS[reader, features] = diagnose_synthetic(adapter, adapter.settings, cset, classes, n_boot=200, seed=0)
    return _RUNS[reader, features]


def test_a_finding_only_model_is_location_invariant(cset):
    out = _run(cset, "finding")
    s = out["summary"]
    assert s["invariance_ratio"]["value"] < 0.02 and s["invariance_ratio"]["ci_high"] < 0.05
    assert s["invariance_ratio_mirror"]["value"] < 0.02 and s["invariance_ratio_zone"]["value"] < 0.02
    assert s["presence_effect"]["value"] > 0.7
    assert s["class_swap_ratio"]["value"] > 0.95  # swapping the class removes the score like removing the finding
    # its maps are the finding masks: they point into the finding and follow it when it moves
    assert s["pointing_game.what"]["value"] == 1.0 and s["map_follow.what"]["value"] > 0.95
    # no anatomy stream: every anatomy metric says so instead of being skipped
    for key in ("anatomy_score_follow", "anatomy_pointing_game", "site_pointing_game"):
        assert s[key]["value"] is None and "anatomy" in s[key]["not_applicable"]
        assert out["not_applicable"][key] == s[key]["not_applicable"]


def test_a_left_lung_reader_is_not_location_invariant(cset):
    s = _run(cset, "left-lung")["summary"]
    # moving a finding across the midline changes its score as much as removing it (more, on average)
    assert s["invariance_ratio_mirror"]["value"] > 1.5
    assert s["invariance_ratio"]["value"] > 0.7 and s["invariance_ratio"]["ci_low"] > 0.4
    assert s["class_swap_ratio"]["value"] < 0.3  # it cannot tell the classes apart


def test_probes_decode_noise_at_chance_and_a_planted_class_above(cset):
    noise = _run(cset, "finding", "noise")["summary"]
    planted = _run(cset, "finding", "class")["summary"]
    for target, chance in (("class", 0.25), ("side", 0.5), ("zone", 1 / 3)):
        entry = noise[f"probe_{target}.what"]
        assert entry["ci_low"] <= chance + 0.05 and entry["value"] < chance + 0.3, (target, entry)
    assert planted["probe_class.what"]["value"] > 0.9
    assert planted["probe_side.what"]["value"] < 0.8  # the planted signal says nothing about the side


def test_probe_recipe_on_pure_noise_is_at_chance_and_finds_a_real_signal():
    rng = np.random.default_rng(1)
    n_groups, per = 100, 6
    groups = np.repeat(np.arange(n_groups), per)
    labels = rng.integers(0, 3, size=len(groups))
    split = split_groups(groups, seed=0)
    noise = rng.normal(size=(len(groups), 200))
    entry = linear_probe(noise, labels, groups, split, 3, n_boot=300, seed=0)
    assert abs(entry["value"] - 1 / 3) < 0.12 and entry["ci_low"] < 1 / 3 < entry["ci_high"]
    signal = noise.copy()
    signal[np.arange(len(labels)), labels] += 3.0
    assert linear_probe(signal, labels, groups, split, 3, n_boot=50, seed=0)["value"] > 0.85
    assert set(split) == {"train", "val", "test"} and not set(split["test"]) & set(split["train"])
