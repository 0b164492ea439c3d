"""SingleStreamMeDSLIP-style single-stream model: MeDSLIP's pathology stream only.

:class:`SingleStreamMeDSLIP` is built by :class:`medslip.MeDSLIP` itself (same creation order, same
initialisation, hence, for one seed, the same initial values of the shared parameters) and then
drops everything that belongs to the anatomy stream or to the losses it does not use:

- kept: ``pathology_embedding_layer``, ``res_features``, ``res_l1_pathology``,
  ``res_l2_pathology``, ``decoder_pathology`` (with its final ``norm``), ``dropout_feas_pathology``,
  ``classifier_pathology``;
- dropped: the anatomy stream (``res_l*_anatomy``, ``decoder_anatomy``, ``classifier_anatomy``,
  ``dropout_feas_anatomy``), the stream-splitting ``mask_generator`` and the ProtoCL heads
  ``cl_fc_pathology`` / ``cl_fc_anatomy``.

Every parameter name is therefore a MeDSLIP parameter name with the same shape, so the two models
are directly comparable (and a SingleStreamMeDSLIP state dict loads into MeDSLIP with ``strict=False``). The only
training signal is the existence (present / absent) cross-entropy of the pathology queries.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from medslip import losses
from medslip.config import MeDSLIPConfig
from medslip.model import MeDSLIP
from medslip.sampling import existence_labels

#: The value of ``config.extra["architecture"]`` that marks a single-stream model.
ARCHITECTURE = "single-stream"

#: MeDSLIP modules that the single-stream model does not have.
DROPPED_MODULES = (
    "cl_fc_pathology",
    "cl_fc_anatomy",
    "res_l1_anatomy",
    "res_l2_anatomy",
    "mask_generator",
    "decoder_anatomy",
    "dropout_feas_anatomy",
    "classifier_anatomy",
)


def single_stream_config(config: MeDSLIPConfig | None = None, **overrides: Any) -> MeDSLIPConfig:
    """A :class:`MeDSLIPConfig` marked as single-stream (``extra["architecture"] = "single-stream"``)."""
    base = config.to_dict() if config is not None else {}
    base.update(overrides)
    extra = dict(base.get("extra") or {})
    extra["architecture"] = ARCHITECTURE
    base["extra"] = extra
    return MeDSLIPConfig.from_dict(base)


class SingleStreamMeDSLIP(MeDSLIP):
    """The single-stream predecessor: pathology queries over image patches, existence loss only.

    Args:
        config: MeDSLIP hyper-parameters (the anatomy-related ones are ignored); it is marked
            single-stream in ``config.extra``.
        pathology_book: P x T embeddings of the observation descriptions.
        anatomy_book: accepted for signature compatibility; unused by the model.
    """

    def __init__(self, config: MeDSLIPConfig | None = None, pathology_book: Tensor | None = None,
                 anatomy_book: Tensor | None = None) -> None:
        super().__init__(single_stream_config(config), pathology_book, anatomy_book)
        for name in DROPPED_MODULES:
            delattr(self, name)

    def encode_image(self, images: Tensor) -> tuple[Tensor, None]:  # type: ignore[override]
        """Images (B x 3 x S x S) -> pathology patch features (B x L x d) and ``None`` (no anatomy stream)."""
        feats = self.res_features(images).flatten(2).transpose(1, 2)  # B x L x C
        return self.res_l2_pathology(F.relu(self.res_l1_pathology(feats))), None

    def decode(self, patches_pathology: Tensor, patches_anatomy: Tensor | None = None,  # type: ignore[override]
               pathology_queries: Tensor | None = None, need_attention: bool = True) -> dict[str, Any]:
        """Run the pathology decoder on patch features (B x L x d); batch-first outputs."""
        batch = patches_pathology.shape[0]
        if pathology_queries is None:
            pathology_queries = self.embed_queries(self.pathology_book)
        out, maps = self.decoder_pathology(pathology_queries.unsqueeze(1).expand(-1, batch, -1),
                                           patches_pathology.transpose(0, 1), need_weights=need_attention)
        return {"features_pathology": out.transpose(0, 1), "attn_pathology": maps}

    def forward(self, images: Tensor, need_attention: bool = True,
                pathology_queries: Tensor | None = None) -> dict[str, Any]:
        """``logits_pathology`` (B x P x 2), ``attn_pathology`` (per layer B x P x L), ``features_pathology``."""
        patches, _ = self.encode_image(images)
        out = self.decode(patches, None, pathology_queries, need_attention)
        out["logits_pathology"] = self.classifier_pathology(self.dropout_feas_pathology(out["features_pathology"]))
        return out

    def compute_loss(self, batch: dict[str, Tensor], generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """The existence loss of the pathology queries (``labels_pathology`` or derived from ``matrix``)."""
        labels = batch.get("labels_pathology")
        if labels is None:
            labels = existence_labels(batch["matrix"], dim=-2)
        patches, _ = self.encode_image(batch["images"])
        features = self.decode(patches, None, need_attention=False)["features_pathology"]
        loss = losses.existence_loss(self.classifier_pathology(self.dropout_feas_pathology(features)), labels)
        return {"loss": loss, "loss_ce_pathology": loss}


__all__ = ["ARCHITECTURE", "DROPPED_MODULES", "SingleStreamMeDSLIP", "single_stream_config"]
