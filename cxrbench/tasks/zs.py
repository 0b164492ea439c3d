"""Zero-shot classification: probabilities from the model, thresholds from validation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cxrbench.metrics.classification import classification_report
from cxrbench.phases import phase
from cxrbench.tasks.common import TaskData, batched, summary_entries
from cxrbench.tasks.plots import roc_png


def run(adapter, data: TaskData, *, out_dir: Path, n_boot: int, threshold_on: str = "val", **_: Any) -> dict:
    classes = list(data.spec.classes)
    val, test = data.rows("val"), data.rows("test")
    with phase("inference"):
        val_scores = batched(lambda x: adapter.zero_shot(x, classes), data, val).numpy()
        test_scores = batched(lambda x: adapter.zero_shot(x, classes), data, test).numpy()
    with phase("metrics"):  # thresholds, metrics, bootstrap intervals, ROC figure
        report = classification_report(val_scores, data.labels(val), test_scores, data.labels(test),
                                       list(data.spec.labels), groups=test["patient_id"].to_numpy(),
                                       n_boot=n_boot, seed=0, threshold_on=threshold_on)
        roc = roc_png(test_scores, data.labels(test), list(data.spec.labels), out_dir)
    return {
        "metrics": report,
        "summary": summary_entries(report["macro"], data.spec.metrics),
        "selection": {"thresholds": report["thresholds"], "chosen_on": threshold_on, "threshold_on": threshold_on},
        "n_eval": {"val": len(val), "test": len(test)},
        "artifacts": [roc] if roc else [],
    }

