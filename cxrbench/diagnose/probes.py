"""Linear-probe decodability: a fixed probe recipe on frozen features, regularisation chosen on validation.

Recipe (the same for every model, stream and target):

1. the base cases (or, on real data, patients) are split into train / val / test (60 / 20 / 20 %, seeded); every
   image of a case goes where its case goes, so a patient never sits on both sides;
2. features are standardised with the training images' mean and std (``StandardScaler``);
3. ``LogisticRegression`` (L2, lbfgs, ``class_weight="balanced"``, at most 2000 iterations) is fitted on the
   training images for each ``C`` of :data:`C_GRID`; the ``C`` with the highest validation balanced accuracy
   wins (ties: the smaller ``C``, the stronger regularisation);
4. the probe is refitted with that ``C`` on train + val and scored on test: balanced accuracy (mean recall over
   the classes; chance = 1 / number of classes whatever the class balance), with a percentile bootstrap over
   the test cases.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cxrbench.metrics.bootstrap import interval_from_samples, resample_indices

#: Inverse regularisation strengths tried on validation.
C_GRID: tuple[float, ...] = (0.001, 0.01, 0.1, 1.0, 10.0)
SPLIT_FRACTIONS = (0.6, 0.2, 0.2)
MAX_ITER = 2000

RECIPE = {
    "split": "base cases (real data: patients) 60/20/20 train/val/test, seeded; all images of a case together",
    "scaling": "StandardScaler fitted on the training images, then a rotation onto their span (PCA keeping "
               "every component, no whitening: the same L2 probe, computed in at most N dimensions)",
    "probe": f"sklearn LogisticRegression(L2, lbfgs, class_weight='balanced', max_iter={MAX_ITER})",
    "C_grid": list(C_GRID),
    "selection": "C with the highest validation balanced accuracy (ties: smaller C); refit on train+val",
    "metric": "test balanced accuracy (chance = 1 / number of classes)",
    "interval": "percentile bootstrap over test cases",
}


def split_groups(groups: np.ndarray, seed: int) -> dict[str, np.ndarray]:
    """``{"train", "val", "test"}`` -> sorted unique group ids, a seeded 60/20/20 split of the groups."""
    unique = np.array(sorted(set(groups.tolist())))
    order = np.random.default_rng(np.random.SeedSequence([int(seed), 0x9B0BE])).permutation(len(unique))
    n = len(unique)
    n_test = max(1, int(round(SPLIT_FRACTIONS[2] * n)))
    n_val = max(1, int(round(SPLIT_FRACTIONS[1] * n)))
    if n - n_test - n_val < 1:
        raise ValueError(f"a probe needs at least 3 cases (got {n})")
    shuffled = unique[order]
    return {"test": np.sort(shuffled[:n_test]), "val": np.sort(shuffled[n_test:n_test + n_val]),
            "train": np.sort(shuffled[n_test + n_val:])}


def balanced_accuracy(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> float:
    """Mean recall over the classes present in ``y_true`` (NaN when it is empty)."""
    if len(y_true) == 0:
        return float("nan")
    recalls = [np.mean(y_pred[y_true == k] == k) for k in range(n_classes) if np.any(y_true == k)]
    return float(np.mean(recalls))


def _fit(x: np.ndarray, y: np.ndarray, c: float):
    """Standardise, rotate onto the training images' span (PCA with every component, no whitening), fit LR.

    The rotation changes nothing but the cost: an L2-penalised linear model's weights lie in the span of its
    training images, an orthonormal rotation keeps their norm, and a test image's part outside the span meets
    weights that are zero there. So the probe equals the plain standardised-feature probe, in at most N
    dimensions instead of D (thousands for MeDSLIP's concatenated query outputs).
    """
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    k = int(min(x.shape[0], x.shape[1]))
    model = make_pipeline(StandardScaler(), PCA(n_components=k, svd_solver="full"),
                          LogisticRegression(C=c, max_iter=MAX_ITER, class_weight="balanced"))
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    from threadpoolctl import threadpool_limits

    # one BLAS thread: these problems are tiny, and many threads on a busy machine cost 10-20x the time
    with warnings.catch_warnings(), threadpool_limits(limits=1):
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(x, y)
    return model


def linear_probe(features: np.ndarray, labels: np.ndarray, groups: np.ndarray, split: dict[str, np.ndarray],
                 n_classes: int, n_boot: int = 1000, seed: int = 0) -> dict[str, Any]:
    """Probe ``labels`` (ints in ``[0, n_classes)``) from ``features`` (N x D) with the fixed recipe.

    ``groups`` (N,) names each image's case; ``split`` is :func:`split_groups`'s output. Returns a JSON-ready
    entry: ``value`` / ``ci_low`` / ``ci_high`` (test balanced accuracy), ``chance``, ``C`` (chosen),
    ``val_balanced_accuracy`` per C, and the image counts.
    """
    features = np.asarray(features, dtype=np.float64)
    labels = np.asarray(labels).astype(int)
    groups = np.asarray(groups)
    where = {k: np.isin(groups, v) for k, v in split.items()}
    train, val, test = where["train"], where["val"], where["test"]
    base = {"chance": 1.0 / n_classes, "n_classes": int(n_classes),
            "n_images": {k: int(v.sum()) for k, v in where.items()}}
    if len(np.unique(labels[train])) < 2:
        return {**base, "value": None, "ci_low": None, "ci_high": None,
                "undefined_reason": "the training images hold fewer than two classes"}
    from threadpoolctl import threadpool_limits

    val_scores = {}
    for c in C_GRID:
        model = _fit(features[train], labels[train], c)
        with threadpool_limits(limits=1):
            val_scores[c] = balanced_accuracy(labels[val], model.predict(features[val]), n_classes)
    best = max(C_GRID, key=lambda c: (np.nan_to_num(val_scores[c], nan=-1.0), -c))
    model = _fit(features[train | val], labels[train | val], best)
    test_idx = np.flatnonzero(test)
    with threadpool_limits(limits=1):
        pred = model.predict(features[test_idx])
    truth = labels[test_idx]
    point = balanced_accuracy(truth, pred, n_classes)
    test_groups = groups[test_idx]
    samples = np.array([balanced_accuracy(truth[idx], pred[idx], n_classes)
                        for idx in resample_indices(len(test_idx), test_groups, n_boot, seed)])
    interval = interval_from_samples(point, samples).to_dict()
    return {**base, **{k: interval[k] for k in ("value", "ci_low", "ci_high", "undefined_reason")},
            "C": best, "val_balanced_accuracy": {f"{c:g}": v for c, v in val_scores.items()},
            "bootstrap": {"n_boot": int(n_boot), "seed": int(seed), "unit": "case",
                          "n_units": int(len(set(test_groups.tolist())))}}


__all__ = ["C_GRID", "RECIPE", "balanced_accuracy", "linear_probe", "split_groups"]
