"""Percentile bootstrap over test images, optionally resampled by patient, and seed aggregation.

Resampling model
----------------
A *unit* is an image, or a patient when ``groups`` is given (all images of a sampled patient come
together). Each resample draws ``n_units`` units with replacement. The draws come from
``numpy.random.default_rng(seed)`` in fixed-size chunks of :data:`CHUNK` resamples, so a seed gives the same
resamples whatever the size of the data, and the two views offered here agree exactly:

- :func:`resample_indices` yields, for each resample, the image indices (with repeats), for any metric
  written as ``metric(indices) -> float``;
- :func:`resample_weights` yields the same resamples as multiplicity matrices ``(chunk, N)`` (how many times
  image ``i`` is in resample ``b``), which lets metrics be computed for many resamples at once;
- :func:`resample_unit_counts` yields them unit-major (copies of each unit per resample), the form the
  classification bootstrap reads without expanding to images.

Stratified resampling (protocol v2): with ``strata`` (one integer per image; a unit's stratum is the largest
of its images', e.g. 1 for a patient with a positive image), units are drawn with replacement *within* each
stratum, as many as the stratum holds. Per-class metrics resample patients within the positive and the
negative group of the class, so every resample has positives and negatives and none is discarded. With one
stratum the draws are exactly the unstratified ones.

A resample for which the metric is still undefined (``NaN`` or ``None``) is counted as skipped. The interval is
the 2.5th and 97.5th percentiles (``numpy.percentile``, linear interpolation) of the defined values; by default
(``min_valid_fraction = 1``) it is undefined unless every resample is defined: an interval is never
conditioned on the resamples that happen to be defined.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

CHUNK = 100
"""Number of resamples drawn per generator call (part of the definition of the random stream)."""

DEFAULT_N_BOOT = 1000
DEFAULT_CONFIDENCE = 0.95
DEFAULT_MIN_VALID_FRACTION = 1.0
#: How the records describe the resampling (protocol v2).
SCHEME = ("95 % percentile bootstrap, 1000 resamples by default, seed 0; units: patients (images where no "
          "patient id); per-class and positive-image metrics stratified: patients resampled within the positive "
          "and the negative group separately; no resample discarded")


@dataclass(frozen=True)
class Units:
    """How images map to resampling units.

    Attributes:
        n_images: N, the number of images.
        image_unit: ``(N,)`` int, the unit (patient, or the image itself) of each image, in ``[0, n_units)``.
        n_units: number of distinct units.
        by_group: whether units are patient groups (``True``) or single images.
    """

    n_images: int
    image_unit: np.ndarray
    n_units: int
    by_group: bool

    @property
    def description(self) -> str:
        return "patient" if self.by_group else "image"


def make_units(n_images: int, groups: Sequence[Any] | np.ndarray | None = None) -> Units:
    """Build the resampling units for ``n_images`` images.

    Args:
        n_images: N.
        groups: ``(N,)`` patient identifiers (any hashable, e.g. strings or ints), or ``None`` to resample
            single images.
    """
    if n_images < 1:
        raise ValueError("bootstrap needs at least one image")
    if groups is None:
        return Units(n_images, np.arange(n_images), n_images, False)
    groups_arr = np.asarray(groups)
    if groups_arr.shape != (n_images,):
        raise ValueError(f"groups must have shape ({n_images},), got {groups_arr.shape}")
    _, inverse = np.unique(groups_arr, return_inverse=True)
    inverse = inverse.reshape(-1)
    return Units(n_images, inverse, int(inverse.max()) + 1, True)


def unit_strata(units: Units, strata: Sequence[int] | np.ndarray | None) -> np.ndarray | None:
    """``(n_units,)`` stratum of each unit: the largest stratum of its images (``None`` when not stratified)."""
    if strata is None:
        return None
    arr = np.asarray(strata).astype(np.int64).reshape(-1)
    if arr.shape != (units.n_images,):
        raise ValueError(f"strata must have shape ({units.n_images},), got {arr.shape}")
    out = np.full(units.n_units, np.iinfo(np.int64).min, dtype=np.int64)
    np.maximum.at(out, units.image_unit, arr)
    return out


def _unit_draws(n_units: int, n_boot: int, seed: int, unit_stratum: np.ndarray | None = None
                ) -> Iterator[np.ndarray]:
    """Yield ``(chunk, n_units)`` arrays of drawn unit ids; ``n_boot`` rows in total.

    With ``unit_stratum``, column block ``k`` of a row holds draws from the ``k``-th stratum (sorted), as many
    as it has units; a single stratum gives the unstratified stream."""
    rng = np.random.default_rng(seed)
    groups = None
    if unit_stratum is not None:
        keys = np.unique(unit_stratum)
        if keys.size > 1:
            groups = [np.flatnonzero(unit_stratum == k) for k in keys]
    done = 0
    while done < n_boot:
        rows = min(CHUNK, n_boot - done)
        if groups is None:
            yield rng.integers(0, n_units, size=(rows, n_units))
        else:
            yield np.concatenate([members[rng.integers(0, members.size, size=(rows, members.size))]
                                  for members in groups], axis=1)
        done += rows


def resample_unit_counts(units: Units, n_boot: int = DEFAULT_N_BOOT, seed: int = 0,
                         strata: Sequence[int] | np.ndarray | None = None) -> Iterator[np.ndarray]:
    """Yield the bootstrap resamples as unit-major counts: ``(units.n_units, chunk)`` float64 arrays, entry
    ``[u, b]`` the number of copies of unit ``u`` in resample ``b`` of the chunk; image ``i`` has the multiplicity
    of its unit ``units.image_unit[i]``. The same resamples as :func:`resample_weights`; a metric that reads only
    some images gathers only their units' rows."""
    for draws in _unit_draws(units.n_units, n_boot, seed, unit_strata(units, strata)):
        rows = draws.shape[0]
        flat = (draws * rows + np.arange(rows)[:, None]).ravel()
        yield np.bincount(flat, minlength=units.n_units * rows).reshape(units.n_units, rows).astype(np.float64)


def resample_weights(
    n_images: int,
    groups: Sequence[Any] | np.ndarray | None = None,
    n_boot: int = DEFAULT_N_BOOT,
    seed: int = 0,
    strata: Sequence[int] | np.ndarray | None = None,
) -> Iterator[np.ndarray]:
    """Yield the bootstrap resamples as multiplicity matrices (stratified with ``strata``, see the module).

    Yields:
        ``(chunk, N)`` float64 arrays (``chunk <= CHUNK``, ``n_boot`` rows in total); entry ``[b, i]`` is the
        number of copies of image ``i`` in resample ``b``.
    """
    units = make_units(n_images, groups)
    for counts in resample_unit_counts(units, n_boot, seed, strata):
        yield np.ascontiguousarray(counts.T[:, units.image_unit])


def resample_indices(
    n_images: int,
    groups: Sequence[Any] | np.ndarray | None = None,
    n_boot: int = DEFAULT_N_BOOT,
    seed: int = 0,
    strata: Sequence[int] | np.ndarray | None = None,
) -> Iterator[np.ndarray]:
    """Yield each bootstrap resample as an array of image indices (with repeats).

    With ``groups``, a resample is the concatenation of all images of each drawn patient (so its length
    varies); without, it has length N. Same resamples as :func:`resample_weights` for the same arguments.
    """
    units = make_units(n_images, groups)
    order = np.argsort(units.image_unit, kind="stable")  # images sorted by unit
    sizes = np.bincount(units.image_unit, minlength=units.n_units)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    for draws in _unit_draws(units.n_units, n_boot, seed, unit_strata(units, strata)):
        for row in draws:
            if not units.by_group:
                yield row
                continue
            row_sizes = sizes[row]
            total = int(row_sizes.sum())
            first = np.repeat(starts[row], row_sizes)
            within = np.arange(total) - np.repeat(np.cumsum(row_sizes) - row_sizes, row_sizes)
            yield order[first + within]


@dataclass(frozen=True)
class Interval:
    """A point estimate with its bootstrap interval.

    Attributes:
        value: the point estimate on the full evaluation set (``None`` when undefined).
        ci_low, ci_high: percentile interval bounds (``None`` when undefined).
        n_used: resamples with a defined metric.
        n_skipped: resamples skipped because the metric was undefined on them.
        reason: why ``value`` or the interval is undefined, else ``None``.
    """

    value: float | None
    ci_low: float | None
    ci_high: float | None
    n_used: int
    n_skipped: int
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary (``None`` for undefined numbers)."""
        return {
            "value": self.value,
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
            "n_resamples_used": self.n_used,
            "n_resamples_skipped": self.n_skipped,
            "undefined_reason": self.reason,
        }


def _finite_or_none(x: float | None) -> float | None:
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def interval_from_samples(
    point: float | None,
    samples: np.ndarray,
    confidence: float = DEFAULT_CONFIDENCE,
    min_valid_fraction: float = DEFAULT_MIN_VALID_FRACTION,
    point_reason: str | None = None,
) -> Interval:
    """Percentile interval from bootstrap replicates.

    Args:
        point: the full-set estimate (``None``/NaN when undefined).
        samples: ``(n_boot,)`` replicate values, NaN where the resample was undefined.
        confidence: e.g. 0.95 for the 2.5th-97.5th percentiles.
        min_valid_fraction: the interval is undefined when fewer than this fraction of resamples is defined.
        point_reason: reason to report when ``point`` is undefined.
    """
    samples = np.asarray(samples, dtype=np.float64).reshape(-1)
    n_boot = samples.size
    valid = samples[np.isfinite(samples)]
    n_used, n_skipped = int(valid.size), int(n_boot - valid.size)
    value = _finite_or_none(point)
    if value is None:
        return Interval(None, None, None, n_used, n_skipped, point_reason or "undefined on the evaluation set")
    need = math.ceil(min_valid_fraction * n_boot)
    if n_boot == 0 or n_used < max(need, 1):
        reason = f"interval undefined: only {n_used} of {n_boot} resamples defined (need {need})"
        return Interval(value, None, None, n_used, n_skipped, reason)
    tail = 100.0 * (1.0 - confidence) / 2.0
    low, high = np.percentile(valid, [tail, 100.0 - tail])
    return Interval(value, float(low), float(high), n_used, n_skipped, None)


def bootstrap_ci(
    metric: Callable[[np.ndarray], float | None],
    n_images: int,
    groups: Sequence[Any] | np.ndarray | None = None,
    n_boot: int = DEFAULT_N_BOOT,
    seed: int = 0,
    confidence: float = DEFAULT_CONFIDENCE,
    min_valid_fraction: float = DEFAULT_MIN_VALID_FRACTION,
    strata: Sequence[int] | np.ndarray | None = None,
) -> Interval:
    """Percentile bootstrap interval for any metric of image indices (stratified with ``strata``).

    Args:
        metric: ``metric(indices) -> float``; ``indices`` is an int array into the N evaluation images
            (``np.arange(N)`` for the point estimate). Return NaN or ``None`` when undefined (the resample is
            skipped and counted); exceptions propagate.
        n_images: N.
        groups: ``(N,)`` patient ids to resample by patient, or ``None`` to resample images.
        n_boot, seed, confidence, min_valid_fraction: see the module docstring.

    This loops over resamples in Python; metrics that can be written for many resamples at once should
    use :func:`resample_weights` (as the classification, grounding and segmentation reports do).
    """
    point = metric(np.arange(n_images))
    samples = np.empty(n_boot, dtype=np.float64)
    for b, idx in enumerate(resample_indices(n_images, groups, n_boot, seed, strata)):
        value = metric(idx)
        samples[b] = np.nan if value is None else float(value)
    return interval_from_samples(point, samples, confidence, min_valid_fraction)


def bootstrap_weighted_mean(
    values: np.ndarray,
    groups: Sequence[Any] | np.ndarray | None = None,
    n_boot: int = DEFAULT_N_BOOT,
    seed: int = 0,
    confidence: float = DEFAULT_CONFIDENCE,
    min_valid_fraction: float = DEFAULT_MIN_VALID_FRACTION,
    include: np.ndarray | None = None,
    undefined_reason: str = "no image to average over",
    stratify: bool = True,
) -> Interval:
    """Bootstrap interval of the mean of per-image values (vectorised).

    Args:
        values: ``(N,)`` per-image values (finite where ``include`` is true).
        groups: ``(N,)`` patient ids, or ``None``.
        include: ``(N,)`` bool; the mean is over included images only (e.g. positive images). Images that are
            not included still take part in resampling, so a patient's images stay together. With ``stratify``
            (default), patients with an included image and the others are resampled separately, so every
            resample has included images and none is discarded.
        undefined_reason: reported when no image is included.
    """
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    n = values.size
    mask = np.ones(n, dtype=bool) if include is None else np.asarray(include, dtype=bool).reshape(-1)
    if mask.shape != (n,):
        raise ValueError("include must have the same length as values")
    if not np.all(np.isfinite(values[mask])):
        raise ValueError("values must be finite for included images")
    clean = np.where(mask, values, 0.0)
    point = float(clean[mask].mean()) if mask.any() else None
    samples = []
    strata = mask.astype(np.int64) if (stratify and include is not None) else None
    for w in resample_weights(n, groups, n_boot, seed, strata):
        w = w * mask
        total = w.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            samples.append(np.where(total > 0, (w @ clean) / total, np.nan))
    reason = None if point is not None else undefined_reason
    return interval_from_samples(
        point, np.concatenate(samples), confidence, min_valid_fraction, point_reason=reason
    )


def mean_std_over_seeds(values: Sequence[float | None], ddof: int = 1) -> dict[str, Any]:
    """Mean and standard deviation of one metric across seeds (one value per run).

    Args:
        values: one value per seed; ``None``/NaN marks a run where the metric was undefined.
        ddof: delta degrees of freedom of the standard deviation (1: sample standard deviation).

    Returns:
        ``{"mean": float|None, "std": float|None, "n_seeds": int, "n_undefined": int, "ddof": int}``;
        the mean and std are over the defined values; ``std`` is ``None`` with fewer than ``ddof + 1`` values.
    """
    arr = np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64)
    ok = arr[np.isfinite(arr)]
    mean = float(ok.mean()) if ok.size else None
    std = float(ok.std(ddof=ddof)) if ok.size > ddof else None
    return {"mean": mean, "std": std, "n_seeds": int(ok.size), "n_undefined": int(arr.size - ok.size), "ddof": ddof}
