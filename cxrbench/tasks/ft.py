"""Fine-tuning classification: the model's image encoder + a linear head, on a label-fraction subset.

Full fine-tuning (default) puts a randomly initialised layer4 of the same ResNet on top of the
pretrained trunk (the published recipe for MeDSLIP: conv1..layer3 pretrained, layer4 random);
``linear_probe`` freezes the trunk and trains a linear head on pooled layer3 features.
Selection and early stopping use the validation macro AUC; the test split is evaluated once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
import torchvision
from torch import Tensor, nn

from cxrbench.metrics.classification import classification_report, macro_mean, roc_auc_per_class
from cxrbench.models.base import Encoder
from cxrbench.phases import phase
from cxrbench.tasks.common import TaskData, batched, summary_entries
from cxrbench.tasks.finetune import FitSettings, fit
from cxrbench.tasks.plots import roc_png


class EncoderClassifier(nn.Module):
    def __init__(self, encoder: Encoder, num_classes: int, linear_probe: bool = False) -> None:
        super().__init__()
        self.trunk = encoder.trunk
        self.linear_probe = linear_probe
        if linear_probe:
            for p in self.trunk.parameters():
                p.requires_grad_(False)
            self.layer4 = None
            width = encoder.channels[-1]
        else:
            self.layer4 = (encoder.layer4() if encoder.layer4 is not None
                           else getattr(torchvision.models, encoder.arch)(weights=None).layer4)
            width = encoder.channels[-1] * 2
        self.head = nn.Linear(width, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        if self.linear_probe:
            self.trunk.eval()
        feat = self.trunk(x)[-1]
        if self.layer4 is not None:
            feat = self.layer4(feat)
        return self.head(feat.mean((2, 3)))


def masked_bce(logits: Tensor, targets: Tensor) -> Tensor:
    """BCE over the known (non-NaN) labels only; a batch without any known label contributes an exact zero
    (with a gradient of zeros), never the NaN of a mean over nothing."""
    known = ~torch.isnan(targets)
    if not known.any():
        return logits.sum() * 0.0
    return F.binary_cross_entropy_with_logits(logits[known], targets[known])


def run(adapter, data: TaskData, *, out_dir: Path, n_boot: int, seed: int, label_frac: float,
        device: torch.device, subset_rows, settings: FitSettings, linear_probe: bool = False,
        progress: bool = True, threshold_on: str = "val", **_: Any) -> dict:
    encoder = adapter.encoder()
    model = EncoderClassifier(encoder, len(data.spec.classes), linear_probe).to(device)
    labels = torch.tensor(data.labels(subset_rows), dtype=torch.float32)
    val, test = data.rows("val"), data.rows("test")
    val_labels = data.labels(val)

    def predict(rows) -> np.ndarray:
        with torch.no_grad():
            return batched(lambda x: torch.sigmoid(model(x.to(device))), data, rows).numpy()

    def validate(_model) -> float | None:
        return macro_mean(roc_auc_per_class(predict(val), val_labels))

    with phase("training"):  # the epochs, each with its validation pass
        result = fit(model, data, subset_rows, lambda idx: labels[idx], masked_bce, validate, settings, seed,
                     device, progress)
    with phase("inference"):
        val_scores, test_scores = predict(val), predict(test)
    with phase("metrics"):
        report = classification_report(val_scores, val_labels, test_scores, data.labels(test),
                                       list(data.spec.labels), groups=test["patient_id"].to_numpy(), n_boot=n_boot,
                                       seed=0, threshold_on=threshold_on)
        roc = roc_png(test_scores, data.labels(test), list(data.spec.labels), out_dir)
    return {
        "metrics": report,
        "summary": summary_entries(report["macro"], data.spec.metrics),
        "selection": {"metric": "val macro AUC", "best_epoch": result.best_epoch, "best_val": result.best_val,
                      "history": result.history, "thresholds": report["thresholds"], "chosen_on": threshold_on,
                      "threshold_on": threshold_on, "checkpoint_chosen_on": "val"},
        "training": {"mode": "linear-probe" if linear_probe else "full fine-tuning", "encoder": encoder.source,
                     "layer4": None if linear_probe else f"random {encoder.arch} layer4", **settings.__dict__},
        "n_eval": {"train": len(subset_rows), "val": len(val), "test": len(test)},
        "artifacts": [roc] if roc else [],
    }
