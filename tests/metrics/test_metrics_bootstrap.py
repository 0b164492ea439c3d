"""Bootstrap resampling: reproducibility, patient groups, skipped resamples, agreement with a loop."""

from __future__ import annotations


import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from cxrbench.metrics.bootstrap import (
    bootstrap_ci,
    bootstrap_weighted_mean,
    interval_from_samples,
    mean_std_over_seeds,
    resample_indices,
    resample_weights,
)
from cxrbench.metrics.classification import bootstrap_classification, classification_report


def _binary(seed: int, n: int = 200):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.3).astype(float)
    s = np.round(rng.normal(size=n) + y, 1)
    return s, y


def _auc_on(s, y):
    def metric(idx):
        yy = y[idx]
        if yy.min() == yy.max():
            return None
        return roc_auc_score(yy, s[idx])

    return metric


def test_ci_contains_point_and_is_reproducible():
    s, y = _binary(0)
    a = bootstrap_ci(_auc_on(s, y), len(y), n_boot=200, seed=3)
    b = bootstrap_ci(_auc_on(s, y), len(y), n_boot=200, seed=3)
    c = bootstrap_ci(_auc_on(s, y), len(y), n_boot=200, seed=4)
    assert a == b
    assert a != c
    assert a.ci_low < a.value < a.ci_high
    assert a.value == pytest.approx(roc_auc_score(y, s))
    assert a.n_used == 200 and a.n_skipped == 0


@pytest.mark.parametrize("grouped", [False, True])
def test_indices_and_weights_describe_the_same_resamples(grouped):
    n = 50
    groups = (np.arange(n) * 7 % 13).astype(str) if grouped else None
    weights = np.concatenate(list(resample_weights(n, groups, n_boot=250, seed=5)))
    indices = list(resample_indices(n, groups, n_boot=250, seed=5))
    assert weights.shape == (250, n) and len(indices) == 250
    for b in range(250):
        np.testing.assert_array_equal(np.bincount(indices[b], minlength=n), weights[b])


def test_grouped_resampling_keeps_patients_together():
    rng = np.random.default_rng(1)
    groups = rng.integers(0, 30, size=120)
    for idx in resample_indices(120, groups, n_boot=100, seed=0):
        counts = np.bincount(idx, minlength=120)
        for g in np.unique(groups):
            members = counts[groups == g]
            assert np.all(members == members[0])  # all images of a patient come the same number of times
    # ungrouped resampling does not keep them together
    split = 0
    for idx in resample_indices(120, None, n_boot=20, seed=0):
        counts = np.bincount(idx, minlength=120)
        split += any(len(set(counts[groups == g])) > 1 for g in np.unique(groups))
    assert split > 0


def test_unstratified_undefined_resamples_never_give_a_conditioned_interval():
    s, y = _binary(2, n=40)
    y[:] = 0.0
    y[0] = 1.0
    res = bootstrap_ci(_auc_on(s, y), len(y), n_boot=300, seed=0)
    assert 60 < res.n_skipped < 160  # ~ (1 - 1/40)^40 = 36 % lack the positive
    assert res.n_used + res.n_skipped == 300
    # protocol v2: an interval over the defined resamples only would be conditioned, not estimated
    assert res.value is not None and res.ci_low is None and "only" in res.reason
    # stratified by the label: every resample keeps its positive, none is discarded
    strat = bootstrap_ci(_auc_on(s, y), len(y), n_boot=300, seed=0, strata=y)
    assert strat.n_skipped == 0 and strat.ci_low is not None


def test_one_stratum_gives_the_unstratified_resamples():
    groups = np.arange(50) // 3
    plain = np.concatenate(list(resample_weights(50, groups, n_boot=120, seed=4)))
    same = np.concatenate(list(resample_weights(50, groups, n_boot=120, seed=4, strata=np.ones(50))))
    np.testing.assert_array_equal(plain, same)
    strata = (np.arange(50) < 7).astype(int)
    for w in resample_weights(50, groups, n_boot=120, seed=4, strata=strata):
        # as many draws of positive patients as there are positive patients (3 patients hold the 7 images)
        assert np.all(w[:, strata == 1].sum(axis=1) > 0)
    undefined = interval_from_samples(float("nan"), np.full(10, np.nan), point_reason="no positive image")
    assert undefined.value is None and undefined.reason == "no positive image"


def test_vectorised_classification_bootstrap_equals_loop():
    rng = np.random.default_rng(3)
    n, c = 150, 3
    y = (rng.random((n, c)) < 0.25).astype(float)
    y[rng.random((n, c)) < 0.1] = np.nan
    s = np.round(rng.normal(size=(n, c)) + np.nan_to_num(y), 1)
    groups = np.arange(n) // 2
    t = np.array([0.2, 0.5, 0.8])
    reps = bootstrap_classification(s, y, t, groups, n_boot=30, seed=9)
    for k in range(c):
        strata = np.where(y[:, k] == 1, 2, np.where(y[:, k] == 0, 1, 0))  # stratified per class
        for b, idx in enumerate(resample_indices(n, groups, n_boot=30, seed=9, strata=strata)):
            yy, ss = y[idx, k], s[idx, k]
            known = ~np.isnan(yy)
            yy, ss = yy[known], ss[known]
            assert reps["auc"][b, k] == pytest.approx(roc_auc_score(yy, ss), abs=1e-12)
            assert reps["auprc"][b, k] == pytest.approx(average_precision_score(yy, ss), abs=1e-12)
            assert reps["accuracy"][b, k] == pytest.approx(np.mean((ss >= t[k]) == (yy == 1)), abs=1e-12)


def test_weighted_mean_with_inclusion():
    values = np.array([1.0, 0.0, 0.5, 0.25])
    include = np.array([True, False, True, False])
    res = bootstrap_weighted_mean(values, include=include, n_boot=100, seed=0)
    assert res.value == pytest.approx(0.75)
    assert 0.5 <= res.ci_low <= res.value <= res.ci_high <= 1.0


def test_mean_std_over_seeds():
    out = mean_std_over_seeds([0.8, 0.9, None, float("nan"), 0.7])
    assert out["mean"] == pytest.approx(0.8)
    assert out["std"] == pytest.approx(np.std([0.8, 0.9, 0.7], ddof=1))
    assert out["n_seeds"] == 3 and out["n_undefined"] == 2
    assert mean_std_over_seeds([0.5])["std"] is None
    assert mean_std_over_seeds([])["mean"] is None


def test_full_size_bootstrap_uses_every_resample():
    """2,000 x 14 with 1,000 patient resamples (speed is for benchmarks, not asserted here)."""
    rng = np.random.default_rng(0)
    n, c = 2000, 14
    y = (rng.random((n, c)) < 0.1).astype(float)
    s = rng.normal(size=(n, c)) + y
    rep = classification_report(s, y, s, y, [str(i) for i in range(c)], groups=np.arange(n) // 3, n_boot=1000)
    assert rep["macro"]["auc"]["n_resamples_used"] == 1000
    assert rep["macro"]["auc"]["ci_low"] <= rep["macro"]["auc"]["value"] <= rep["macro"]["auc"]["ci_high"]
