"""The MeDSLIP module: dual-stream image encoder, two query decoders, five loss terms.

Parameter names and shapes are those of the published implementation, so its released state
dict loads strictly (see :mod:`medslip.checkpoint`). The books (text-encoder embeddings of the
observation descriptions and anatomy prompts) are non-persistent buffers: they are not part of
the state dict, exactly as in the released checkpoint.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
import torchvision
from torch import Tensor, nn

from medslip import losses
from medslip.config import MeDSLIPConfig
from medslip.decoder import QueryDecoder, QueryDecoderLayer
from medslip.sampling import existence_labels, protocl_indices

BATCH_KEYS = (
    "images",
    "labels_pathology",
    "labels_anatomy",
    "matrix",
    "sample_index_pathology",
    "sample_index_anatomy",
)


def build_backbone(name: str) -> nn.Sequential:
    """A randomly initialised torchvision ResNet's children up to and including layer3."""
    resnet = getattr(torchvision.models, name)(weights=None)
    return nn.Sequential(*list(resnet.children())[:-3])


class MeDSLIP(nn.Module):
    """Medical Dual-Stream Language-Image Pre-training.

    Args:
        config: the hyper-parameters.
        pathology_book: P x T embeddings of the observation descriptions (optional; zeros if omitted).
        anatomy_book: A x T embeddings of the anatomy prompts (optional; zeros if omitted).
    """

    def __init__(
        self,
        config: MeDSLIPConfig | None = None,
        pathology_book: Tensor | None = None,
        anatomy_book: Tensor | None = None,
    ) -> None:
        super().__init__()
        self.config = config = config or MeDSLIPConfig()
        channels, d, width = config.backbone_channels, config.d_model, config.text_width

        # Creation order follows the published module, so state-dict order matches too.
        self.pathology_embedding_layer = nn.Linear(width, d)
        self.cl_fc_pathology = nn.Linear(d, width)
        self.res_features = build_backbone(config.backbone)
        self.res_l1_pathology = nn.Linear(channels, channels)
        self.res_l2_pathology = nn.Linear(channels, d)
        self.cl_fc_anatomy = nn.Linear(d, width)
        self.res_l1_anatomy = nn.Linear(channels, channels)
        self.res_l2_anatomy = nn.Linear(channels, d)
        self.mask_generator = nn.Linear(channels, channels)

        layer = QueryDecoderLayer(d, config.num_heads, config.dim_feedforward, config.dropout)
        shared_norm = nn.LayerNorm(d)  # one instance, tied between the two decoders
        self.decoder_anatomy = QueryDecoder(layer, config.num_layers, shared_norm)
        self.decoder_pathology = QueryDecoder(layer, config.num_layers, shared_norm)

        self.dropout_feas_anatomy = nn.Dropout(config.dropout)
        self.dropout_feas_pathology = nn.Dropout(config.dropout)
        self.classifier_anatomy = nn.Linear(d, config.num_classes)
        self.classifier_pathology = nn.Linear(d, config.num_classes)
        self.apply(_init_weights)

        self.register_buffer("pathology_book", torch.zeros(config.num_pathologies, width), persistent=False)
        self.register_buffer("anatomy_book", torch.zeros(config.num_anatomies, width), persistent=False)
        if pathology_book is not None or anatomy_book is not None:
            self.set_books(pathology_book, anatomy_book)

    # ------------------------------------------------------------------ books
    def set_books(self, pathology_book: Tensor | None = None, anatomy_book: Tensor | None = None) -> None:
        """Replace the book embeddings (shapes are checked against the config)."""
        for name, book in (("pathology_book", pathology_book), ("anatomy_book", anatomy_book)):
            if book is None:
                continue
            current = getattr(self, name)
            book = torch.as_tensor(book)
            if book.ndim != 2 or book.shape[1] != current.shape[1]:
                raise ValueError(
                    f"{name} must be N x {current.shape[1]} (text width from the config), got {tuple(book.shape)}"
                )
            if name == "anatomy_book" and book.shape[0] != current.shape[0]:
                raise ValueError(f"anatomy_book must have {current.shape[0]} rows, got {book.shape[0]}")
            setattr(self, name, book.detach().to(device=current.device, dtype=current.dtype).clone())

    def embed_queries(self, book: Tensor) -> Tensor:
        """Project book rows (N x T) into decoder queries (N x d) with the shared projection."""
        return self.pathology_embedding_layer(book)

    # ---------------------------------------------------------------- forward
    def encode_image(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """Images (B x 3 x S x S) -> pathology and anatomy patch features, each B x L x d."""
        feats = self.res_features(images)
        x = feats.flatten(2).transpose(1, 2)  # B x L x C
        mask = self.mask_generator(x)
        x_pathology = self.res_l2_pathology(F.relu(self.res_l1_pathology(mask * x)))
        x_anatomy = self.res_l2_anatomy(F.relu(self.res_l1_anatomy((1 - mask) * x)))
        return x_pathology, x_anatomy

    def decode(
        self,
        patches_pathology: Tensor,
        patches_anatomy: Tensor,
        pathology_queries: Tensor | None = None,
        need_attention: bool = True,
    ) -> dict[str, Any]:
        """Run both decoders on patch features (B x L x d). Returns batch-first outputs."""
        batch = patches_pathology.shape[0]
        if pathology_queries is None:
            pathology_queries = self.embed_queries(self.pathology_book)
        anatomy_queries = self.embed_queries(self.anatomy_book)
        out_p, maps_p = self.decoder_pathology(
            pathology_queries.unsqueeze(1).expand(-1, batch, -1),
            patches_pathology.transpose(0, 1),
            need_weights=need_attention,
        )
        out_a, maps_a = self.decoder_anatomy(
            anatomy_queries.unsqueeze(1).expand(-1, batch, -1),
            patches_anatomy.transpose(0, 1),
            need_weights=need_attention,
        )
        return {
            "features_pathology": out_p.transpose(0, 1),  # B x P x d, before feature dropout
            "features_anatomy": out_a.transpose(0, 1),  # B x A x d
            "attn_pathology": maps_p,  # per layer: B x P x L
            "attn_anatomy": maps_a,  # per layer: B x A x L
        }

    def forward(
        self, images: Tensor, need_attention: bool = True, pathology_queries: Tensor | None = None
    ) -> dict[str, Any]:
        """Inference outputs.

        Returns a dict with ``logits_pathology`` (B x P x 2), ``logits_anatomy`` (B x A x 2),
        ``attn_pathology`` / ``attn_anatomy`` (lists over layers of B x Q x L head-averaged
        cross-attention) and the pre-dropout decoder outputs ``features_*`` (B x Q x d).
        ``pathology_queries`` (P' x d) replaces the observation queries, for classes outside the
        vocabulary (zero-shot on unseen diseases).
        """
        x_pathology, x_anatomy = self.encode_image(images)
        out = self.decode(x_pathology, x_anatomy, pathology_queries, need_attention)
        out["logits_pathology"] = self.classifier_pathology(self.dropout_feas_pathology(out["features_pathology"]))
        out["logits_anatomy"] = self.classifier_anatomy(self.dropout_feas_anatomy(out["features_anatomy"]))
        return out

    # ------------------------------------------------------------------ losses
    def compute_loss(self, batch: dict[str, Tensor], generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """The five loss terms and their sum.

        ``batch`` holds ``images`` and ``matrix`` (B x A x P); ``labels_*`` and ``sample_index_*``
        are derived from the matrix (and drawn with ``generator``) when absent. Inputs are never
        modified.
        """
        images, matrix = batch["images"], batch["matrix"]
        labels_p = batch.get("labels_pathology")
        labels_a = batch.get("labels_anatomy")
        if labels_p is None:
            labels_p = existence_labels(matrix, dim=-2)
        if labels_a is None:
            labels_a = existence_labels(matrix, dim=-1)
        index_p = batch.get("sample_index_pathology")
        index_a = batch.get("sample_index_anatomy")
        if index_p is None or index_a is None:
            index_p, index_a = protocl_indices(matrix, self.config.num_negatives, generator)

        x_pathology, x_anatomy = self.encode_image(images)
        out = self.decode(x_pathology, x_anatomy, need_attention=False)
        return self.loss_terms(
            out["features_pathology"], out["features_anatomy"], matrix, labels_p, labels_a, index_p, index_a
        )

    def loss_terms(
        self,
        features_pathology: Tensor,
        features_anatomy: Tensor,
        matrix: Tensor,
        labels_pathology: Tensor,
        labels_anatomy: Tensor,
        sample_index_pathology: Tensor,
        sample_index_anatomy: Tensor,
    ) -> dict[str, Tensor]:
        """The five terms from the pre-dropout decoder outputs (B x P x d and B x A x d)."""
        loss_ap = losses.interaction_loss(features_pathology, features_anatomy, matrix)
        drop_p = self.dropout_feas_pathology(features_pathology)
        drop_a = self.dropout_feas_anatomy(features_anatomy)
        loss_ce_p = losses.existence_loss(self.classifier_pathology(drop_p), labels_pathology)
        loss_ce_a = losses.existence_loss(self.classifier_anatomy(drop_a), labels_anatomy)
        positive = matrix == 1  # B x A x P
        loss_cl_p = losses.prototype_contrastive_loss(
            self.cl_fc_pathology(drop_p), self.anatomy_book, positive.transpose(1, 2),
            sample_index_pathology.long(), labels_pathology,
        )
        loss_cl_a = losses.prototype_contrastive_loss(
            self.cl_fc_anatomy(drop_a), self.pathology_book, positive, sample_index_anatomy.long(), labels_anatomy
        )
        total = loss_ce_p + loss_ce_a + loss_cl_p + loss_cl_a + loss_ap
        return {
            "loss": total,
            "loss_ce_pathology": loss_ce_p,
            "loss_cl_pathology": loss_cl_p,
            "loss_ce_anatomy": loss_ce_a,
            "loss_cl_anatomy": loss_cl_a,
            "loss_ap": loss_ap,
        }


def _init_weights(module: nn.Module) -> None:
    """Published initialisation: Linear and attention projection weights ~ N(0, 0.02)."""
    if isinstance(module, nn.Linear):
        module.weight.data.normal_(mean=0.0, std=0.02)
    elif isinstance(module, nn.MultiheadAttention):
        module.in_proj_weight.data.normal_(mean=0.0, std=0.02)
        module.out_proj.weight.data.normal_(mean=0.0, std=0.02)
