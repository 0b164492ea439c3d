"""A straightforward re-implementation of MeDSLIP's loss computation, written the way the published
code computes it: ProtoCL candidates gathered into B x Q x 8 x T tensors, the positive-anatomy
tensors materialised as B x A x P x T, and Python loops over every (sample, query).

It is the *reference* of the benchmarks (speed and memory ratios are against it) and an
independent check of the vectorized losses in the tests. It never modifies its inputs (it copies
the matrix where the published code overwrites it in place).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from medslip.model import MeDSLIP


def _loop_protocl(out: Tensor, cl_fc, book: Tensor, positive_matrix: Tensor, sample_index: Tensor,
                  labels: Tensor) -> Tensor:
    """out: B x Q x d; book: rows indexed by sample_index (N x T); positive_matrix: B x N x Q (0/1)."""
    B, Q, K = sample_index.shape
    T = book.shape[1]
    # candidates B x Q x K x T, with zero rows at index -1
    candidates = book[sample_index, :] * (sample_index != -1).int().unsqueeze(-1).repeat(1, 1, 1, T)
    # B x N x Q x T, then B x Q x N x T: positive cells times the book rows
    positive = positive_matrix.unsqueeze(3).repeat(1, 1, 1, T)
    rows = book.unsqueeze(0).repeat(B, 1, 1).unsqueeze(2).repeat(1, 1, Q, 1)
    posi = (positive * rows).transpose(1, 2)
    candidates = candidates.clone()
    for i in range(B):
        for j in range(Q):
            if (posi[i, j] != 0).sum() > 0:
                num = torch.nonzero(posi[i, j], as_tuple=True)[0].unique().shape[0]
                candidates[i, j, 0, :] = posi[i, j].sum(dim=0) / num
    emb = cl_fc(out.reshape(B * Q, -1)).unsqueeze(-1)
    scores = torch.bmm(candidates.reshape(B * Q, K, T), emb).squeeze(-1)
    mask = (labels.reshape(-1) == 1)
    target = torch.zeros(int(mask.sum()), dtype=torch.long)
    return F.cross_entropy(scores[mask], target)


def loop_losses(model: MeDSLIP, features_pathology: Tensor, features_anatomy: Tensor,
                batch: dict[str, Tensor]) -> dict[str, Tensor]:
    """The five terms from the decoder outputs (B x Q x d, pre-dropout), published-style."""
    matrix = batch["matrix"].clone()
    labels_p, labels_a = batch["labels_pathology"], batch["labels_anatomy"]
    ap = torch.bmm(features_pathology, features_anatomy.transpose(1, 2)).transpose(1, 2)
    keep = matrix >= 0
    loss_ap = F.binary_cross_entropy_with_logits(ap[keep].float(), matrix[keep].float())
    out_p = model.dropout_feas_pathology(features_pathology)
    out_a = model.dropout_feas_anatomy(features_anatomy)
    positive = matrix.clone()
    positive[positive < 1] = 0
    loss_cl_p = _loop_protocl(out_p, model.cl_fc_pathology, model.anatomy_book, positive,
                              batch["sample_index_pathology"].long(), labels_p)
    loss_cl_a = _loop_protocl(out_a, model.cl_fc_anatomy, model.pathology_book, positive.transpose(1, 2),
                              batch["sample_index_anatomy"].long(), labels_a)

    def ce(logits: Tensor, labels: Tensor) -> Tensor:
        labels = labels.reshape(-1)
        logits = logits.reshape(-1, logits.shape[-1])
        keep = (labels != -1) & (labels != 2)
        return F.cross_entropy(logits[keep], labels[keep].long())

    loss_ce_p = ce(model.classifier_pathology(out_p), labels_p)
    loss_ce_a = ce(model.classifier_anatomy(out_a), labels_a)
    return {
        "loss": loss_ce_p + loss_ce_a + loss_cl_p + loss_cl_a + loss_ap,
        "loss_ce_pathology": loss_ce_p,
        "loss_cl_pathology": loss_cl_p,
        "loss_ce_anatomy": loss_ce_a,
        "loss_cl_anatomy": loss_cl_a,
        "loss_ap": loss_ap,
    }


def loop_compute_loss(model: MeDSLIP, batch: dict[str, Tensor]) -> dict[str, Tensor]:
    """Full published-style loss: the forward computes attention maps (as the published code does)."""
    x_p, x_a = model.encode_image(batch["images"])
    out = model.decode(x_p, x_a, need_attention=True)
    return loop_losses(model, out["features_pathology"], out["features_anatomy"], batch)
