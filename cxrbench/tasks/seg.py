"""Segmentation: a MONAI U-Net decoder on the model's pretrained encoder, Dice + CE loss.

The encoder's multi-scale features (strides 2, 4, 8, 16) feed MONAI's ``UNetDecoder`` and
``SegmentationHead`` (the blocks of ``FlexibleUNet``); the loss is MONAI's ``DiceCELoss`` on the
sigmoid output. Selection and early stopping use the validation Dice over positive images (protocol v2: a
predict-nothing model scores 0 there, while it wins the all-image mean on a test set of mostly empty masks);
the test split is evaluated once. The two trivial references (predict nothing, predict the whole image) are
computed on the same test images and stored with the metrics.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from cxrbench.metrics.segmentation import binarise_logits, dice_per_image, segmentation_report
from cxrbench.models.base import Encoder
from cxrbench.phases import phase
from cxrbench.tasks.common import TaskData, batched, region_masks, summary_entries
from cxrbench.tasks.finetune import FitSettings, fit
from cxrbench.tasks.plots import overlay_png


class EncoderUNet(nn.Module):
    def __init__(self, encoder: Encoder, decoder_channels: tuple[int, ...] = (128, 64, 32, 16)) -> None:
        super().__init__()
        self.trunk = encoder.trunk
        channels = (3,) + tuple(encoder.channels[:4])
        from monai.networks.nets.flexible_unet import SegmentationHead, UNetDecoder  # monai: 4 s to import

        self.decoder = UNetDecoder(spatial_dims=2, encoder_channels=channels, decoder_channels=decoder_channels,
                                   act=("relu", {"inplace": True}), norm=("batch", {"eps": 1e-3, "momentum": 0.1}),
                                   dropout=0.0, bias=False, upsample="nontrainable", pre_conv="default",
                                   interp_mode="nearest", align_corners=None, is_pad=True)
        self.head = SegmentationHead(spatial_dims=2, in_channels=decoder_channels[-1], out_channels=1, kernel_size=3)

    def forward(self, x: Tensor) -> Tensor:
        feats = [x] + list(self.trunk(x))[:4]
        return self.head(self.decoder(feats, skip_connect=3))


def run(adapter, data: TaskData, *, out_dir: Path, n_boot: int, seed: int, label_frac: float,
        device: torch.device, subset_rows, settings: FitSettings, progress: bool = True, threshold_on: str = "val",
        **_: Any) -> dict:
    if threshold_on != "val":
        raise ValueError("segmentation has no threshold to choose (sigmoid > 0.5): --threshold-on test does not "
                         "apply to it")
    encoder = adapter.encoder()
    model = EncoderUNet(encoder).to(device)
    size = data.cache.size
    label = data.spec.classes[0].label
    train_masks = torch.from_numpy(region_masks(data, subset_rows, label, size))  # bool: 1 byte per pixel
    val, test = data.rows("val"), data.rows("test")
    val_masks = region_masks(data, val, label, size)
    from monai.losses import DiceCELoss

    loss = DiceCELoss(sigmoid=True)

    def logits(rows) -> np.ndarray:
        with torch.no_grad():
            return batched(lambda x: model(x.to(device)), data, rows).numpy()[:, 0]

    val_positive = val_masks.reshape(len(val_masks), -1).any(1)

    def validate(_model) -> float | None:
        if not val_positive.any():
            return None  # undefined: fit() refuses to select on it
        return float(dice_per_image(binarise_logits(logits(val)), val_masks)[val_positive].mean())

    # training masks follow the images through the same geometric augmentation only when it is the
    # identity; segmentation therefore trains without augmentation
    settings = FitSettings(**{**settings.__dict__, "augment": "none"})
    with phase("training"):  # the epochs, each with its validation pass
        result = fit(model, data, subset_rows, lambda idx: train_masks[idx].unsqueeze(1).float(), loss, validate,
                     settings, seed, device, progress)
    with phase("inference"):
        test_logits = logits(test)
    with phase("metrics"):  # metrics, bootstrap intervals, overlay figure
        test_masks = region_masks(data, test, label, size)
        report = segmentation_report(test_masks, logits=test_logits, groups=test["patient_id"].to_numpy(),
                                     n_boot=n_boot, seed=0)
        positive = test_masks.reshape(len(test_masks), -1).any(1)
        images = np.stack([np.asarray(data.cache[data.cache.index_of(p)]) for p in test["path"][positive][:8]]) \
            if positive.any() else np.zeros((0, size, size))
        overlay = overlay_png(images, 1 / (1 + np.exp(-test_logits[positive][:8])), test_masks[positive][:8],
                              out_dir, "segmentation.png")
    summary = summary_entries(report, data.spec.metrics)
    return {
        "metrics": report,
        "summary": summary,
        "selection": {"metric": "val Dice over positive images", "best_epoch": result.best_epoch,
                      "best_val": result.best_val, "history": result.history, "chosen_on": "val",
                      "threshold_on": "val"},
        "training": {"decoder": "MONAI UNetDecoder + SegmentationHead", "loss": "MONAI DiceCELoss(sigmoid)",
                     "encoder": encoder.source, **settings.__dict__},
        "n_eval": {"train": len(subset_rows), "val": len(val), "test": len(test)},
        "artifacts": [overlay] if overlay else [],
    }
