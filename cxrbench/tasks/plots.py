"""PNG artefacts saved next to result records: ROC curves and grounding overlays."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def roc_png(scores: np.ndarray, labels: np.ndarray, names: list[str], out_dir: Path) -> str | None:
    """ROC curve of every class with both positives and negatives; returns the file name, or None."""
    from sklearn.metrics import roc_curve

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 5))
    drawn = 0
    for c, name in enumerate(names):
        known = ~np.isnan(labels[:, c])
        y = labels[known, c]
        if y.size == 0 or y.min() == y.max():
            continue
        fpr, tpr, _ = roc_curve(y, scores[known, c])
        ax.plot(fpr, tpr, lw=1, label=name)
        drawn += 1
    if not drawn:
        plt.close(fig)
        return None
    ax.plot([0, 1], [0, 1], "k--", lw=0.5)
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC (test split)")
    ax.legend(fontsize=6, loc="lower right")
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "roc.png"
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path.name


def overlay_png(images: np.ndarray, maps: np.ndarray, masks: np.ndarray, out_dir: Path, name: str,
                limit: int = 8) -> str | None:
    """Grayscale images with the map (colour) and the ground-truth region outline."""
    n = min(limit, len(images))
    if n == 0:
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(1, n, figsize=(2 * n, 2.2), squeeze=False)
    for i in range(n):
        ax = axes[0, i]
        ax.imshow(images[i], cmap="gray")
        ax.imshow(maps[i], cmap="jet", alpha=0.35)
        ax.contour(masks[i].astype(float), levels=[0.5], colors="w", linewidths=0.8)
        ax.axis("off")
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / name
    fig.savefig(path, dpi=90, bbox_inches="tight")
    plt.close(fig)
    return path.name
