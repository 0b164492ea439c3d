"""Multi-label classification metrics: AUC, AUPRC, F1 and accuracy with validation thresholds.

Conventions (the evaluation protocol)
-------------------------------------
- Inputs are ``scores`` ``(N, C)`` (any real numbers; higher means more likely positive) and ``labels``
  ``(N, C)`` with 1 = positive, 0 = negative, NaN = unknown. A 1-D ``(N,)`` input is one class.
  Unknown entries are excluded from that class only, and counted (``n_unknown``).
- A class is *evaluable* when its labelled entries hold at least one positive and one negative. Every metric
  of a class that is not evaluable is undefined (``NaN`` in arrays, ``None`` in reports, with a reason) and the
  class is left out of macro means. Never a crash, never a silent 0.5.
- AUC is ``sklearn.metrics.roc_auc_score`` (ties count one half); AUPRC is
  ``sklearn.metrics.average_precision_score`` (step-wise, no interpolation).
- Decision rule: positive iff ``score >= threshold``. The threshold of a class is the validation score that
  maximises F1 on the validation predictions; ties between thresholds with equal F1 go to the *highest*
  threshold (fewest predicted positives). A class without validation positives has no threshold (NaN).
- Macro = unweighted mean over the classes where the metric is defined; each macro entry lists its classes.
- Bootstrap: thresholds are fixed (they come from validation), test patients are resampled, stratified per
  class (within the positive and the negative group separately, see :mod:`cxrbench.metrics.bootstrap`), so
  every resample of an evaluable class is defined and none is discarded; a macro replicate is the mean of the
  classes' replicates of the same index.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score

from cxrbench.metrics.bootstrap import (
    DEFAULT_CONFIDENCE,
    DEFAULT_MIN_VALID_FRACTION,
    SCHEME,
    interval_from_samples,
    make_units,
    resample_unit_counts,
)

METRICS = ("auc", "auprc", "f1", "accuracy")

PROTOCOL = {
    "auc": "ROC AUC per class over all labelled evaluation images (sklearn roc_auc_score; ties count 1/2)",
    "auprc": "average precision per class (sklearn average_precision_score, step-wise)",
    "f1_accuracy": "positive iff score >= threshold; F1 and accuracy over labelled evaluation images",
    "threshold": "per class, the validation score maximising validation F1; ties -> highest threshold",
    "undefined": "a class lacking positives or negatives among labelled images has undefined metrics",
    "macro": "unweighted mean over classes where the metric is defined (listed per metric)",
    "unknown_labels": "NaN labels are excluded per class and counted",
    "interval": "95% percentile bootstrap over test patients (images when no groups), stratified per class "
    "(positive and negative groups resampled separately); thresholds fixed; no resample discarded",
}


# --------------------------------------------------------------------------------------------- inputs


def _as_2d(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Validate and return ``(scores, labels)`` as float64 ``(N, C)`` arrays."""
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)
    if s.ndim == 1:
        s = s[:, None]
    if y.ndim == 1:
        y = y[:, None]
    if s.ndim != 2 or s.shape != y.shape:
        raise ValueError(f"scores and labels must both be (N, C); got {np.shape(scores)} and {np.shape(labels)}")
    if s.shape[0] == 0:
        raise ValueError("no images to evaluate")
    if not np.all(np.isfinite(s)):
        raise ValueError("scores must be finite (evaluation never drops samples; fix the model output)")
    known = y[~np.isnan(y)]
    if not np.all((known == 0) | (known == 1)):
        raise ValueError("labels must be 0, 1 or NaN (unknown)")
    return s, y


@dataclass(frozen=True)
class ClassCounts:
    """Label counts of one class over the evaluation images.

    Attributes:
        n_positive, n_negative: labelled positives and negatives.
        n_unknown: NaN labels, excluded from this class's metrics.
    """

    n_positive: int
    n_negative: int
    n_unknown: int

    @property
    def evaluable(self) -> bool:
        """True when the class has both positives and negatives."""
        return self.n_positive > 0 and self.n_negative > 0

    @property
    def reason(self) -> str | None:
        """Why the class is not evaluable, or ``None``."""
        if self.n_positive == 0 and self.n_negative == 0:
            return "no labelled image (all labels unknown)"
        if self.n_positive == 0:
            return "no positive image"
        if self.n_negative == 0:
            return "no negative image"
        return None


def class_counts(labels: np.ndarray) -> list[ClassCounts]:
    """Per-class counts of positives, negatives and unknowns.

    Args:
        labels: ``(N, C)`` or ``(N,)`` with values 0, 1 or NaN.
    """
    y = np.asarray(labels, dtype=np.float64)
    if y.ndim == 1:
        y = y[:, None]
    return [
        ClassCounts(int(np.sum(col == 1)), int(np.sum(col == 0)), int(np.sum(np.isnan(col)))) for col in y.T
    ]


# --------------------------------------------------------------------------------------- point metrics


def roc_auc_per_class(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """ROC AUC per class.

    Args:
        scores: ``(N, C)`` scores. labels: ``(N, C)`` 0/1/NaN.

    Returns:
        ``(C,)`` float64; NaN for classes that are not evaluable (see :func:`class_counts`).
    """
    return _per_class(roc_auc_score, scores, labels)


def _per_class(metric, scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """``metric(y, s)`` per evaluable class over its known labels; NaN for the others."""
    s, y = _as_2d(scores, labels)
    out = np.full(s.shape[1], np.nan)
    for c, counts in enumerate(class_counts(y)):
        if counts.evaluable:
            known = ~np.isnan(y[:, c])
            out[c] = metric(y[known, c], s[known, c])
    return out


def average_precision_per_class(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Average precision (AUPRC) per class.

    Args:
        scores: ``(N, C)`` scores. labels: ``(N, C)`` 0/1/NaN.

    Returns:
        ``(C,)`` float64; NaN for classes that are not evaluable.
    """
    return _per_class(average_precision_score, scores, labels)


def macro_mean(values: np.ndarray) -> float | None:
    """Unweighted mean over defined (finite) entries; ``None`` when none is defined."""
    v = np.asarray(values, dtype=np.float64)
    ok = np.isfinite(v)
    return float(v[ok].mean()) if ok.any() else None


def select_thresholds(val_scores: np.ndarray, val_labels: np.ndarray) -> np.ndarray:
    """Per-class decision thresholds maximising F1 on validation predictions.

    The candidates are the distinct validation scores of the class's labelled images; the rule is
    positive iff ``score >= threshold``. Among candidates with the maximal F1 (compared exactly: F1 is a
    correctly rounded ratio of integers), the highest threshold wins.

    Args:
        val_scores: ``(N, C)`` validation scores. val_labels: ``(N, C)`` 0/1/NaN.

    Returns:
        ``(C,)`` float64 thresholds; NaN for a class with no labelled validation positive (no threshold
        maximises F1 there).
    """
    s, y = _as_2d(val_scores, val_labels)
    thresholds = np.full(s.shape[1], np.nan)
    for c in range(s.shape[1]):
        known = ~np.isnan(y[:, c])
        sc, yc = s[known, c], y[known, c]
        n_pos = int(yc.sum())
        if n_pos == 0:
            continue
        order = np.argsort(-sc, kind="stable")
        sc, yc = sc[order], yc[order]
        # last index of each run of equal scores (descending): predicting positive down to that score
        last = np.flatnonzero(np.r_[sc[1:] != sc[:-1], True])
        tp = np.cumsum(yc)[last]
        predicted = last + 1
        f1 = 2.0 * tp / (predicted + n_pos)
        best = int(np.flatnonzero(f1 == f1.max())[0])  # first in descending order = highest threshold
        thresholds[c] = sc[last[best]]
    return thresholds


class F1Accuracy(NamedTuple):
    """F1 and accuracy per class at fixed thresholds; each ``(C,)`` float64, NaN where undefined."""

    f1: np.ndarray
    accuracy: np.ndarray


def f1_accuracy_at(test_scores: np.ndarray, test_labels: np.ndarray, thresholds: np.ndarray) -> F1Accuracy:
    """F1 and accuracy per class with positive iff ``score >= threshold``.

    Args:
        test_scores: ``(N, C)``. test_labels: ``(N, C)`` 0/1/NaN. thresholds: ``(C,)`` (NaN = none).

    Returns:
        :class:`F1Accuracy`; NaN for classes that are not evaluable or have no threshold.
    """
    s, y = _as_2d(test_scores, test_labels)
    t = np.asarray(thresholds, dtype=np.float64).reshape(-1)
    if t.shape != (s.shape[1],):
        raise ValueError(f"thresholds must have shape ({s.shape[1]},), got {t.shape}")
    f1 = np.full(s.shape[1], np.nan)
    acc = np.full(s.shape[1], np.nan)
    for c, counts in enumerate(class_counts(y)):
        if not counts.evaluable or np.isnan(t[c]):
            continue
        known = ~np.isnan(y[:, c])
        pred = s[known, c] >= t[c]
        pos = y[known, c] == 1
        tp = np.sum(pred & pos)
        fp = np.sum(pred & ~pos)
        fn = np.sum(~pred & pos)
        f1[c] = 2.0 * tp / (2.0 * tp + fp + fn)
        acc[c] = np.mean(pred == pos)
    return F1Accuracy(f1, acc)


# ---------------------------------------------------------------------------------- vectorised bootstrap


class _ClassPlan(NamedTuple):
    """Index plan for one class, computed once and reused for every chunk of resamples.

    Labelled images are taken in ascending score order; tie groups are runs of equal scores. Only groups
    holding a positive contribute to AUC and AUPRC, so beyond two passes over all images (a gather and a
    segment sum) the work is over positive images only.
    """

    rows: np.ndarray  # (n,) image indices of the labelled images, ascending score
    bounds: np.ndarray  # (K,) sorted unique positions in [0, n) where segment sums start
    pos_rows: np.ndarray  # (n_pos,) image indices of positives, ascending score
    pos_group_first: np.ndarray  # (Gp,) index into pos_rows of each positive group's first positive
    start_at: np.ndarray  # (Gp,) index into the cumulative table of each positive group's start position
    end_at: np.ndarray  # (Gp,) same for the group's end (exclusive)
    thr_at: int | None  # cumulative-table index of the first position with score >= threshold
    thr_group: int | None  # number of positive groups strictly below the threshold


def _plan_class(scores: np.ndarray, labels: np.ndarray, threshold: float, known: np.ndarray) -> _ClassPlan:
    """Plan for one class. scores, labels: ``(N,)``; known: ``(N,)`` bool (labelled images)."""
    idx = np.flatnonzero(known)
    order = np.argsort(scores[idx], kind="stable")
    rows = idx[order]
    s = scores[rows]
    pos = labels[rows] == 1
    n = s.size
    group_start = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])  # (G,)
    group_end = np.r_[group_start[1:], n]
    group_of = np.repeat(np.arange(group_start.size), np.diff(np.r_[group_start, n]))
    pos_positions = np.flatnonzero(pos)
    pos_groups, pos_group_first = np.unique(group_of[pos_positions], return_index=True)
    starts, ends = group_start[pos_groups], group_end[pos_groups]
    thr_pos = None if np.isnan(threshold) else int(np.searchsorted(s, threshold, side="left"))
    points = [np.zeros(1, dtype=np.int64), starts, ends]
    if thr_pos is not None:
        points.append(np.array([thr_pos]))
    bounds = np.unique(np.concatenate(points))
    bounds = bounds[bounds < n]
    table = np.r_[bounds, n]  # cumulative table entry j = total weight at positions < table[j]
    return _ClassPlan(
        rows=rows,
        bounds=bounds,
        pos_rows=rows[pos_positions],
        pos_group_first=pos_group_first,
        start_at=np.searchsorted(table, starts),
        end_at=np.searchsorted(table, ends),
        thr_at=None if thr_pos is None else int(np.searchsorted(table, thr_pos)),
        thr_group=None if thr_pos is None else int(np.searchsorted(starts, thr_pos, side="left")),
    )


def _metrics_planned(plan: _ClassPlan, w_img: np.ndarray) -> dict[str, np.ndarray]:
    """Metrics of one class for weights ``w_img`` of shape ``(M, B)`` whose rows ``plan.rows`` / ``plan.pos_rows``
    index (image-major weights, or unit-major counts with the plan's rows mapped to units); each ``(B,)``."""
    if plan.pos_rows.size == 0 or plan.rows.size == 0:
        return {m: np.full(w_img.shape[1], np.nan) for m in METRICS}
    seg = np.add.reduceat(w_img[plan.rows], plan.bounds, axis=0)
    p_in = np.add.reduceat(w_img[plan.pos_rows], plan.pos_group_first, axis=0)  # (Gp, B)
    return _metrics_from_segments(plan, seg, p_in)


class _SegmentSums(NamedTuple):
    """The two segment sums of :func:`_metrics_planned` as sparse 0/1 matrices over the rows of unit-major
    counts: ``seg = segments @ counts``, ``p_in = positive_groups @ counts``. A product of integer counts is
    exact in float64, so the result equals the gather + ``reduceat`` bit for bit, without gathering
    ``(n_images, B)`` weights."""

    segments: Any  # scipy.sparse CSR (K, n_units)
    positive_groups: Any  # scipy.sparse CSR (Gp, n_units)

    @classmethod
    def of(cls, plan: _ClassPlan, n_units: int) -> "_SegmentSums":
        from scipy.sparse import csr_matrix

        def matrix(rows: np.ndarray, starts: np.ndarray):
            segment = np.searchsorted(starts, np.arange(rows.size), side="right") - 1
            ones = np.ones(rows.size)
            return csr_matrix((ones, (segment, rows)), shape=(starts.size, n_units))  # duplicates are summed

        return cls(matrix(plan.rows, plan.bounds), matrix(plan.pos_rows, plan.pos_group_first))

    def metrics(self, plan: _ClassPlan, counts: np.ndarray) -> dict[str, np.ndarray]:
        if plan.pos_rows.size == 0 or plan.rows.size == 0:
            return {m: np.full(counts.shape[1], np.nan) for m in METRICS}
        return _metrics_from_segments(plan, np.asarray(self.segments @ counts),
                                      np.asarray(self.positive_groups @ counts))


def _metrics_from_segments(plan: _ClassPlan, seg: np.ndarray, p_in: np.ndarray) -> dict[str, np.ndarray]:
    """Metrics of one class from the weight per segment (``(K, B)``, segments at ``plan.bounds``) and the
    positive weight per positive tie group (``(Gp, B)``)."""
    n_resamples = seg.shape[1]
    cum_w = np.concatenate([np.zeros((1, n_resamples)), np.cumsum(seg, axis=0)])  # (K + 1, B)
    cum_p = np.concatenate([np.zeros((1, n_resamples)), np.cumsum(p_in, axis=0)])  # (Gp + 1, B)
    w_tot = cum_w[-1]
    p_tot = cum_p[-1]
    n_tot = w_tot - p_tot
    w_below = cum_w[plan.start_at]  # (Gp, B) all weight strictly below each positive group
    w_in = cum_w[plan.end_at] - w_below
    p_below = cum_p[:-1]
    n_below = w_below - p_below
    n_in = w_in - p_in
    ok = (p_tot > 0) & (n_tot > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = np.sum(p_in * (n_below + 0.5 * n_in), axis=0) / (p_tot * n_tot)
        # precision at "score >= group score": positives at or above / all weight at or above
        above = w_tot - w_below
        precision = (p_tot - p_below) / np.where(above > 0, above, 1.0)
        auprc = np.sum(p_in * precision, axis=0) / p_tot
        if plan.thr_at is None:
            f1 = acc = np.full(n_resamples, np.nan)
        else:
            predicted = w_tot - cum_w[plan.thr_at]
            tp = p_tot - cum_p[plan.thr_group]
            fp = predicted - tp
            fn = p_tot - tp
            f1 = 2.0 * tp / (2.0 * tp + fp + fn)
            acc = (w_tot - fp - fn) / w_tot
    return {
        "auc": np.where(ok, auc, np.nan),
        "auprc": np.where(ok, auprc, np.nan),
        "f1": np.where(ok, f1, np.nan),
        "accuracy": np.where(ok, acc, np.nan),
    }


def weighted_class_metrics(
    scores: np.ndarray, labels: np.ndarray, weights: np.ndarray, threshold: float = np.nan
) -> dict[str, np.ndarray]:
    """AUC, AUPRC, F1 and accuracy of one class for many image weightings at once.

    With integer weights (bootstrap multiplicities) the results equal the metrics on the resampled set;
    they equal scikit-learn's with ``sample_weight`` for any non-negative weights.

    Args:
        scores: ``(n,)`` scores of the labelled images of the class.
        labels: ``(n,)`` 0/1 labels (no NaN).
        weights: ``(B, n)`` non-negative weights, one row per resample.
        threshold: decision threshold for F1/accuracy (NaN: those are NaN).

    Returns:
        ``{"auc", "auprc", "f1", "accuracy"}`` each ``(B,)``, NaN in rows without positive or negative weight.
    """
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    y = np.asarray(labels, dtype=np.float64).reshape(-1)
    w = np.asarray(weights, dtype=np.float64).reshape(-1, s.size)
    if np.any(np.isnan(y)):
        raise ValueError("labels must be 0/1 here (select the labelled images first)")
    plan = _plan_class(s, y, float(threshold), np.ones(s.size, dtype=bool))
    return _metrics_planned(plan, np.ascontiguousarray(w.T))


def bootstrap_classification(
    scores: np.ndarray,
    labels: np.ndarray,
    thresholds: np.ndarray,
    groups: Sequence[Any] | np.ndarray | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    stratified: bool = True,
) -> dict[str, np.ndarray]:
    """Bootstrap replicates of the per-class metrics (vectorised over resamples).

    With ``stratified`` (protocol v2) each class resamples patients within its positive group, its negative
    group and the patients without a label for it separately (same seed for every class), so each resample of
    an evaluable class is defined.

    Args:
        scores: ``(N, C)``. labels: ``(N, C)`` 0/1/NaN. thresholds: ``(C,)``.
        groups: ``(N,)`` patient ids or ``None``.

    Returns:
        ``{"auc", "auprc", "f1", "accuracy"}`` each ``(n_boot, C)`` float64, NaN where undefined.
    """
    s, y = _as_2d(scores, labels)
    t = np.asarray(thresholds, dtype=np.float64).reshape(-1)
    n, n_classes = s.shape
    out = {m: np.full((n_boot, n_classes), np.nan) for m in METRICS}
    classes = {}
    for c in range(n_classes):
        known = ~np.isnan(y[:, c])
        if known.any():
            classes[c] = _plan_class(s[:, c], y[:, c], t[c], known)
    units = make_units(n, groups)
    for c, plan in classes.items():
        # stratified by the class: patients with a positive, with only negatives, with no label for it
        strata = np.where(y[:, c] == 1, 2, np.where(y[:, c] == 0, 1, 0)) if stratified else None
        # the plan's images as rows of the unit-major counts
        sums = _SegmentSums.of(plan._replace(rows=units.image_unit[plan.rows],
                                             pos_rows=units.image_unit[plan.pos_rows]), units.n_units)
        row = 0
        for counts in resample_unit_counts(units, n_boot, seed, strata):
            rows = slice(row, row + counts.shape[1])
            res = sums.metrics(plan, counts)
            for m in METRICS:
                out[m][rows, c] = res[m]
            row += counts.shape[1]
    return out


# ----------------------------------------------------------------------------------------------- report


def classification_report(
    val_scores: np.ndarray | None,
    val_labels: np.ndarray | None,
    test_scores: np.ndarray,
    test_labels: np.ndarray,
    class_names: Sequence[str],
    groups: Sequence[Any] | np.ndarray | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    *,
    threshold_on: str = "val",
    confidence: float = DEFAULT_CONFIDENCE,
    min_valid_fraction: float = DEFAULT_MIN_VALID_FRACTION,
) -> dict[str, Any]:
    """Per-class and macro AUC, AUPRC, F1 and accuracy with bootstrap intervals.

    Args:
        val_scores, val_labels: ``(N_val, C)`` validation predictions and 0/1/NaN labels; thresholds come
            from these only. May be ``None`` when ``threshold_on="test"``.
        test_scores, test_labels: ``(N, C)`` test predictions and 0/1/NaN labels (the whole test set).
        class_names: ``C`` names.
        groups: ``(N,)`` patient id of each test image (resample by patient), or ``None`` (by image).
        n_boot: number of bootstrap resamples. seed: resampling seed.
        threshold_on: ``"val"`` (the protocol) or ``"test"`` (reproduces published code that picked the
            threshold on the test set; the report says so).
        confidence, min_valid_fraction: see :mod:`cxrbench.metrics.bootstrap`.

    Returns:
        A JSON-ready dict::

            {
              "protocol": {...},                      # the conventions, in words
              "threshold_on": "val" | "test",
              "n_images": N,
              "class_names": [...],
              "per_class": {name: {
                  "n_positive": int, "n_negative": int, "n_unknown": int,
                  "evaluable": bool, "undefined_reason": str | None,
                  "threshold": float | None, "threshold_undefined_reason": str | None,
                  "auc" | "auprc" | "f1" | "accuracy": {
                      "value": float | None, "ci_low": float | None, "ci_high": float | None,
                      "n_resamples_used": int, "n_resamples_skipped": int, "undefined_reason": str | None}}},
              "macro": {"auc" | "auprc" | "f1" | "accuracy": {<same entry>, "classes": [names averaged]}},
              "undefined_classes": [{"class": name, "reason": str}],
              "thresholds": {name: float | None},
              "validation_counts": {name: {"n_positive", "n_negative", "n_unknown"}},  # of the threshold set
              "bootstrap": {"n_boot", "seed", "confidence", "method": "percentile",
                            "unit": "patient" | "image", "n_units", "min_valid_fraction"},
            }
    """
    s, y = _as_2d(test_scores, test_labels)
    names = [str(n) for n in class_names]
    if len(names) != s.shape[1]:
        raise ValueError(f"{len(names)} class names for {s.shape[1]} classes")
    if threshold_on == "val":
        if val_scores is None or val_labels is None:
            raise ValueError("threshold_on='val' needs validation scores and labels")
        vs, vy = _as_2d(val_scores, val_labels)
        if vs.shape[1] != s.shape[1]:
            raise ValueError("validation and test have different numbers of classes")
        thresholds = select_thresholds(vs, vy)
        val_counts = class_counts(vy)
    elif threshold_on == "test":
        thresholds = select_thresholds(s, y)
        val_counts = class_counts(y)
    else:
        raise ValueError("threshold_on must be 'val' or 'test'")

    counts = class_counts(y)
    points = {
        "auc": roc_auc_per_class(s, y),
        "auprc": average_precision_per_class(s, y),
    }
    points["f1"], points["accuracy"] = f1_accuracy_at(s, y, thresholds)
    units = make_units(s.shape[0], groups)
    reps = bootstrap_classification(s, y, thresholds, groups, n_boot, seed)

    per_class: dict[str, Any] = {}
    undefined = []
    for c, name in enumerate(names):
        reason = counts[c].reason
        threshold_reason = None
        if np.isnan(thresholds[c]):
            source = "validation" if threshold_on == "val" else "test"
            threshold_reason = f"no threshold: no labelled positive in the {source} set"
        entry: dict[str, Any] = {
            "n_positive": counts[c].n_positive,
            "n_negative": counts[c].n_negative,
            "n_unknown": counts[c].n_unknown,
            "evaluable": counts[c].evaluable,
            "undefined_reason": reason,
            "threshold": None if np.isnan(thresholds[c]) else float(thresholds[c]),
            "threshold_undefined_reason": threshold_reason,
        }
        for m in METRICS:
            why = reason or (threshold_reason if m in ("f1", "accuracy") else None)
            entry[m] = interval_from_samples(
                points[m][c], reps[m][:, c], confidence, min_valid_fraction, point_reason=why
            ).to_dict()
        per_class[name] = entry
        if reason is not None:
            undefined.append({"class": name, "reason": reason})
        elif threshold_reason is not None:
            undefined.append({"class": name, "reason": f"f1/accuracy undefined: {threshold_reason}"})

    macro: dict[str, Any] = {}
    for m in METRICS:
        cols = np.flatnonzero(np.isfinite(points[m]))
        point = float(points[m][cols].mean()) if cols.size else None
        # mean over the same classes; NaN (skipped) if any of them is undefined in the resample
        samples = reps[m][:, cols].mean(axis=1) if cols.size else np.full(n_boot, np.nan)
        entry = interval_from_samples(
            point, samples, confidence, min_valid_fraction, point_reason="no class with a defined value"
        ).to_dict()
        entry["classes"] = [names[c] for c in cols]
        macro[m] = entry

    return {
        "protocol": dict(PROTOCOL),
        "threshold_on": threshold_on,
        "n_images": int(s.shape[0]),
        "class_names": names,
        "per_class": per_class,
        "macro": macro,
        "undefined_classes": undefined,
        "thresholds": {n: per_class[n]["threshold"] for n in names},
        "validation_counts": {
            n: {"n_positive": vc.n_positive, "n_negative": vc.n_negative, "n_unknown": vc.n_unknown}
            for n, vc in zip(names, val_counts)
        },
        "bootstrap": {
            "n_boot": int(n_boot),
            "seed": int(seed),
            "confidence": confidence,
            "method": "percentile",
            "unit": units.description,
            "n_units": units.n_units,
            "min_valid_fraction": min_valid_fraction,
            "stratified": "per class: positive / negative / unlabelled patients resampled separately",
            "scheme": SCHEME,
        },
    }
