"""Time the classification bootstrap alone at NIH test size, against the image-major reference (issue 19).

The metrics phase of ``nih-zs`` / ``nih-ft`` is dominated by the protocol's bootstrap: 1,000 patient resamples,
stratified per class, of 14 classes over 27,979 test images. ``bootstrap_classification`` takes the resamples as
unit-major counts and forms the segment sums as sparse products; the reference below is the previous path (the
resamples expanded to image-major ``(N, B)`` weights, gathered and summed with ``reduceat``), run on the same data
in the same process. Both must give the same replicates bit for bit; the ratio is printed::

    python -m benchmarks.scale.bootstrap_load [--n 27979] [--classes 14] [--n-boot 1000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from cxrbench.metrics.bootstrap import resample_weights
from cxrbench.metrics.classification import METRICS, _metrics_planned, _plan_class, bootstrap_classification


def reference(scores: np.ndarray, labels: np.ndarray, thresholds: np.ndarray, groups: np.ndarray,
              n_boot: int, seed: int) -> dict[str, np.ndarray]:
    """The image-major path: weights ``(chunk, N)`` per class, transposed, gathered and summed by ``reduceat``."""
    n, n_classes = scores.shape
    out = {m: np.full((n_boot, n_classes), np.nan) for m in METRICS}
    for c in range(n_classes):
        known = ~np.isnan(labels[:, c])
        plan = _plan_class(scores[:, c], labels[:, c], float(thresholds[c]), known)
        strata = np.where(labels[:, c] == 1, 2, np.where(labels[:, c] == 0, 1, 0))
        row = 0
        for w in resample_weights(n, groups, n_boot, seed, strata):
            res = _metrics_planned(plan, np.ascontiguousarray(w.T))
            for m in METRICS:
                out[m][row:row + w.shape[0], c] = res[m]
            row += w.shape[0]
    return out


def data(n: int, n_classes: int, seed: int = 0) -> tuple[np.ndarray, ...]:
    """NIH-like test data: two images per patient on average, 5 % prevalence, scores rounded (ties)."""
    rng = np.random.default_rng(seed)
    groups = rng.integers(0, n // 2, n)
    labels = (rng.random((n, n_classes)) < 0.05).astype(np.float64)
    scores = np.round(rng.random((n, n_classes)) + 0.3 * labels, 3)
    return scores, labels, np.full(n_classes, 0.5), groups


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=27_979, help="test images (NIH's official test list)")
    parser.add_argument("--classes", type=int, default=14)
    parser.add_argument("--n-boot", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    scores, labels, thresholds, groups = data(args.n, args.classes)
    ours, ref = [], []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        new = bootstrap_classification(scores, labels, thresholds, groups, args.n_boot, 0)
        ours.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        old = reference(scores, labels, thresholds, groups, args.n_boot, 0)
        ref.append(time.perf_counter() - t0)
        if not all(np.array_equal(new[m], old[m], equal_nan=True) for m in METRICS):
            raise SystemExit("the two paths disagree")
    a, b = statistics.median(ours), statistics.median(ref)
    print(f"bootstrap of {args.classes} classes x {args.n:,} images x {args.n_boot} resamples: "
          f"{a:.2f} s (image-major reference {b:.2f} s, {b / a:.2f}x); replicates identical")


if __name__ == "__main__":
    main()
