"""Counterfactual SynthCXR sets: deterministic, fingerprinted, and the variants differ only in the finding."""

from __future__ import annotations

import numpy as np
import pytest

from cxrbench.synth.counterfactual import (REGIONS, SIDES, VARIANTS, ZONES, case_listing, make_counterfactual_set,
                                           site_query)


def test_same_arguments_same_set_other_seed_other_set():
    a = make_counterfactual_set(n=4, size=96, seed=3)
    b = make_counterfactual_set(n=4, size=96, seed=3)
    c = make_counterfactual_set(n=4, size=96, seed=4)
    assert case_listing(a) == case_listing(b)
    assert case_listing(a) != case_listing(c)
    assert all(np.array_equal(x.renders[v].image, y.renders[v].image)
               for x, y in zip(a.cases, b.cases) for v in VARIANTS)
    lines = [ln for ln in case_listing(a).splitlines() if not ln.startswith("#")]
    assert len(lines) == 4 and all(len(ln.split("\t")) == 8 for ln in lines)


def test_variants_differ_only_inside_the_findings_masks(cset):
    for case in cset.cases:
        base = case.renders["base"]
        assert base.mask.any() and (base.mask <= base.support).all()
        for v in VARIANTS[1:]:
            r = case.renders[v]
            changed = r.image != base.image
            assert changed.any(), (case.case_id, v)  # the variant really differs
            assert not (changed & ~(r.support | base.support)).any(), (case.case_id, v)
        assert not case.renders["absent"].mask.any() and case.renders["absent"].finding is None


def test_variants_put_the_finding_where_they_say(cset):
    for case in cset.cases:
        other = SIDES[1 - SIDES.index(case.side)]
        expect = {"base": (case.finding, case.side, case.zone), "mirror": (case.finding, other, case.zone),
                  "zone": (case.finding, case.side, case.moved_zone), "swap": (case.swap_class, case.side, case.zone)}
        assert case.moved_zone != case.zone and case.swap_class != case.finding
        for v, (finding, side, zone) in expect.items():
            r = case.renders[v]
            assert (r.finding, r.side, r.zone) == (finding, side, zone)
            lung = case.regions[f"{side}_lung"]
            other_lung = case.regions[f"{SIDES[1 - SIDES.index(side)]}_lung"]
            # on the stated side (masses may overhang the lung border a little, never into the other lung)
            assert (r.mask & lung).sum() >= 0.6 * r.mask.sum() and not (r.mask & other_lung).any(), (case.case_id, v)
            overlap = {z: int((r.mask & case.regions[site_query(side, z)]).sum()) for z in ZONES}
            assert max(overlap, key=overlap.get) == zone, (case.case_id, v, overlap)  # mostly in the stated zone


def test_classes_and_sites_are_balanced_and_regions_partition_the_lungs(cset):
    pairs = {(c.finding, c.side, c.zone) for c in cset.cases}
    assert len(pairs) == 24  # 4 classes x 6 sites, each once
    case = cset.cases[0]
    assert list(case.regions) == list(REGIONS) and all(m.any() for m in case.regions.values())
    for s in SIDES:
        zones = [case.regions[f"{s}_{z}_lung"] for z in ZONES]
        assert np.array_equal(np.logical_or.reduce(zones), case.regions[f"{s}_lung"])
        assert sum(z.astype(int) for z in zones).max() == 1
    assert not (case.regions["heart"] & case.regions["right_lung"]).any()


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError):
        make_counterfactual_set(n=0)
    with pytest.raises(ValueError):
        make_counterfactual_set(n=2, classes=("effusion", "nodule"))
