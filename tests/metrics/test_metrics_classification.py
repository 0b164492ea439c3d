"""Classification metrics against scikit-learn / torchmetrics, and the protocol's edge cases."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from sklearn.metrics import accuracy_score, average_precision_score, f1_score, roc_auc_score
from torchmetrics.functional.classification import multilabel_auroc

from cxrbench.metrics.classification import (
    average_precision_per_class,
    class_counts,
    classification_report,
    f1_accuracy_at,
    macro_mean,
    roc_auc_per_class,
    select_thresholds,
    weighted_class_metrics,
)


def _data(seed: int, n: int = 300, c: int = 5, nan_frac: float = 0.0, rounding: int | None = 1):
    rng = np.random.default_rng(seed)
    labels = (rng.random((n, c)) < 0.3).astype(float)
    scores = rng.normal(size=(n, c)) + labels
    if rounding is not None:
        scores = np.round(scores, rounding)  # create ties
    if nan_frac:
        labels[rng.random((n, c)) < nan_frac] = np.nan
    return scores, labels


def test_auc_auprc_match_sklearn_with_unknown_labels_excluded():
    s, y = _data(0, nan_frac=0.2)
    auc, ap = roc_auc_per_class(s, y), average_precision_per_class(s, y)
    for c in range(s.shape[1]):
        k = ~np.isnan(y[:, c])
        assert auc[c] == pytest.approx(roc_auc_score(y[k, c], s[k, c]), abs=1e-12)
        assert ap[c] == pytest.approx(average_precision_score(y[k, c], s[k, c]), abs=1e-12)
    counts = class_counts(y)
    assert [cc.n_unknown for cc in counts] == np.isnan(y).sum(axis=0).tolist()


def test_auc_matches_torchmetrics():
    s, y = _data(1, rounding=None)
    ours = roc_auc_per_class(s, y)
    tm = multilabel_auroc(torch.tensor(s), torch.tensor(y, dtype=torch.long), num_labels=s.shape[1], average=None)
    np.testing.assert_allclose(ours, tm.double().numpy(), atol=1e-6)


def test_weighted_metrics_match_sklearn_sample_weight():
    s, y = _data(2)
    rng = np.random.default_rng(3)
    w = rng.integers(0, 4, size=(6, s.shape[0])).astype(float)
    res = weighted_class_metrics(s[:, 0], y[:, 0], w, threshold=0.3)
    for b in range(w.shape[0]):
        sw = w[b]
        pred = s[:, 0] >= 0.3
        assert res["auc"][b] == pytest.approx(roc_auc_score(y[:, 0], s[:, 0], sample_weight=sw), abs=1e-12)
        assert res["auprc"][b] == pytest.approx(
            average_precision_score(y[:, 0], s[:, 0], sample_weight=sw), abs=1e-12
        )
        assert res["f1"][b] == pytest.approx(f1_score(y[:, 0], pred, sample_weight=sw), abs=1e-12)
        assert res["accuracy"][b] == pytest.approx(accuracy_score(y[:, 0], pred, sample_weight=sw), abs=1e-12)


@pytest.mark.parametrize("rounding", [0, 1, None])
@pytest.mark.parametrize("threshold", [-10.0, "min", 0.0, "max", 10.0])
def test_weighted_metrics_edge_thresholds_and_ties(rounding, threshold):
    s, y = _data(20, n=120, rounding=rounding)
    s, y = s[:, 1], y[:, 1]
    t = {"min": s.min(), "max": s.max()}.get(threshold, threshold)
    rng = np.random.default_rng(21)
    w = rng.integers(0, 3, size=(8, s.size)).astype(float)
    w[0] = 1.0
    w[1, y == 1] = 0.0  # no positive weight: undefined
    res = weighted_class_metrics(s, y, w, threshold=t)
    pred = s >= t
    assert all(np.isnan(res[m][1]) for m in res)
    for b in [0, *range(2, 8)]:
        assert res["auc"][b] == pytest.approx(roc_auc_score(y, s, sample_weight=w[b]), abs=1e-12)
        assert res["auprc"][b] == pytest.approx(average_precision_score(y, s, sample_weight=w[b]), abs=1e-12)
        assert res["f1"][b] == pytest.approx(f1_score(y, pred, sample_weight=w[b], zero_division=0.0), abs=1e-12)
        assert res["accuracy"][b] == pytest.approx(accuracy_score(y, pred, sample_weight=w[b]), abs=1e-12)


def test_class_without_positives_is_explicitly_undefined():
    s, y = _data(4)
    y[:, 2] = 0.0  # no positive
    y[:, 3] = np.nan  # nothing known
    auc = roc_auc_per_class(s, y)
    assert np.isnan(auc[2]) and np.isnan(auc[3])
    assert macro_mean(auc) == pytest.approx(np.mean(auc[[0, 1, 4]]))
    rep = classification_report(s, y, s, y, list("abcde"), n_boot=50)
    assert rep["per_class"]["c"]["auc"]["value"] is None
    assert rep["per_class"]["c"]["undefined_reason"] == "no positive image"
    assert rep["per_class"]["d"]["undefined_reason"].startswith("no labelled image")
    assert {u["class"] for u in rep["undefined_classes"]} == {"c", "d"}
    assert rep["macro"]["auc"]["classes"] == ["a", "b", "e"]
    assert rep["macro"]["auc"]["value"] == pytest.approx(np.mean(auc[[0, 1, 4]]))
    json.dumps(rep, allow_nan=False)  # JSON-ready, no NaN


def test_constant_scores_give_auc_half_and_perfect_scores_give_one():
    _, y = _data(5)
    const = np.zeros_like(y)
    np.testing.assert_allclose(roc_auc_per_class(const, y), 0.5)
    perfect = y.copy()
    assert np.all(roc_auc_per_class(perfect, y) == 1.0)
    assert np.all(average_precision_per_class(perfect, y) == 1.0)
    rep = classification_report(perfect, y, perfect, y, list("abcde"), n_boot=50)
    for m in ("auc", "auprc", "f1", "accuracy"):
        assert rep["macro"][m]["value"] == 1.0
        assert rep["macro"][m]["ci_low"] == 1.0


def test_permuting_labels_changes_numbers():
    s, y = _data(6)
    perm = np.random.default_rng(0).permutation(len(y))
    t = select_thresholds(s, y)
    assert not np.allclose(roc_auc_per_class(s, y), roc_auc_per_class(s, y[perm]))
    assert not np.allclose(average_precision_per_class(s, y), average_precision_per_class(s, y[perm]))
    assert not np.allclose(f1_accuracy_at(s, y, t).f1, f1_accuracy_at(s, y[perm], t).f1)


def test_threshold_maximises_validation_f1_highest_on_ties():
    s, y = _data(7, nan_frac=0.1)
    t = select_thresholds(s, y)
    for c in range(s.shape[1]):
        k = ~np.isnan(y[:, c])
        cands = np.unique(s[k, c])
        f1s = np.array([f1_score(y[k, c], s[k, c] >= u) for u in cands])
        assert t[c] == cands[np.flatnonzero(f1s == f1s.max())[-1]]
    # explicit tie: thresholds 0.9 and 0.4 both give F1 = 2/3; the higher one is chosen
    tie = select_thresholds(np.array([0.9, 0.8, 0.5, 0.4]), np.array([1.0, 0.0, 0.0, 1.0]))
    assert f1_score([1, 0, 0, 1], [1, 0, 0, 0]) == f1_score([1, 0, 0, 1], [1, 1, 1, 1])
    assert tie[0] == 0.9
    # no validation positive: no threshold
    assert np.isnan(select_thresholds(np.array([0.2, 0.3]), np.array([0.0, 0.0]))[0])


def test_f1_accuracy_match_sklearn():
    vs, vy = _data(8)
    s, y = _data(9, nan_frac=0.1)
    t = select_thresholds(vs, vy)
    res = f1_accuracy_at(s, y, t)
    for c in range(s.shape[1]):
        k = ~np.isnan(y[:, c])
        pred = s[k, c] >= t[c]
        assert res.f1[c] == pytest.approx(f1_score(y[k, c], pred))
        assert res.accuracy[c] == pytest.approx(accuracy_score(y[k, c], pred))


def test_thresholds_depend_on_validation_only():
    vs, vy = _data(10)
    s, y = _data(11)
    names = list("abcde")
    rep = classification_report(vs, vy, s, y, names, n_boot=20)
    flipped = y.copy()
    flipped[:50] = 1.0 - flipped[:50]
    rep2 = classification_report(vs, vy, s, flipped, names, n_boot=20)
    assert rep["thresholds"] == rep2["thresholds"]
    assert rep["macro"]["f1"]["value"] != rep2["macro"]["f1"]["value"]
    np.testing.assert_array_equal(list(rep["thresholds"].values()), select_thresholds(vs, vy))
    # the reproduction option picks thresholds on test and says so
    rep3 = classification_report(None, None, s, y, names, n_boot=20, threshold_on="test")
    assert rep3["threshold_on"] == "test"
    assert rep3["thresholds"] != rep["thresholds"]


def test_report_structure_and_intervals():
    vs, vy = _data(12, nan_frac=0.05)
    s, y = _data(13, nan_frac=0.05)
    groups = np.arange(len(y)) // 3
    rep = classification_report(vs, vy, s, y, list("abcde"), groups=groups, n_boot=200, seed=1)
    assert rep["bootstrap"]["unit"] == "patient" and rep["bootstrap"]["n_units"] == 100
    for name, entry in rep["per_class"].items():
        assert entry["n_unknown"] == int(np.isnan(y[:, "abcde".index(name)]).sum())
        for m in ("auc", "auprc", "f1", "accuracy"):
            e = entry[m]
            assert e["ci_low"] <= e["value"] <= e["ci_high"]
            assert e["n_resamples_used"] + e["n_resamples_skipped"] == 200
    rep_again = classification_report(vs, vy, s, y, list("abcde"), groups=groups, n_boot=200, seed=1)
    assert rep_again == rep


def test_three_positives_give_intervals_without_discarded_resamples():
    """Issue 16: with 3 positives about 1 resample in 20 lacks them all; v1 skipped those (and accepted an interval
    with half the resamples valid). v2 resamples positives and negatives separately: all 1000 are used."""
    s, y = _data(14, n=60, c=2)
    y[:, 1] = 0.0
    y[[3, 17, 40], 1] = 1.0
    groups = np.arange(60) // 2  # patients of two images
    rep = classification_report(s, y, s, y, ["a", "b"], groups=groups, n_boot=1000)
    for m in ("auc", "auprc", "f1", "accuracy"):
        e = rep["per_class"]["b"][m]
        assert e["n_resamples_skipped"] == 0 and e["n_resamples_used"] == 1000
        assert e["ci_low"] is not None and e["ci_low"] <= e["value"] <= e["ci_high"]
        assert rep["macro"][m]["n_resamples_skipped"] == 0 and rep["macro"][m]["ci_low"] is not None
    assert "stratified" in rep["bootstrap"] and rep["bootstrap"]["n_boot"] == 1000


def test_bad_inputs_raise():
    s, y = _data(15)
    with pytest.raises(ValueError):
        roc_auc_per_class(s[:, :2], y)
    bad = s.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError):
        roc_auc_per_class(bad, y)
    with pytest.raises(ValueError):
        roc_auc_per_class(s, y * 2)
