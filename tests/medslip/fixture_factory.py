"""Write fixtures in the shared fixture format, with expected outputs from an independent path.

The expected outputs come from torch's own ``nn.TransformerDecoderLayer`` (pre-norm; the published
decoder layer has the same parameter names), functional linear layers for the mask and stream
projections, and the loop reference of the benchmarks for the losses. Only the random weights
are produced with our module, so a test can check the reference command on other seeds, batch
sizes and image sizes than the shared fixture.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import torchvision
from safetensors.torch import save_file
from torch import nn

from benchmarks.loop_reference import loop_losses
from medslip.config import MeDSLIPConfig
from medslip.model import MeDSLIP
from medslip.sampling import protocl_indices


def _labels_by_loop(matrix: np.ndarray, axis: int) -> np.ndarray:
    """Existence labels the way the published dataset derives them (one line at a time)."""
    lines = matrix.T if axis == 0 else matrix
    out = np.full(lines.shape[0], -1.0)
    for i, line in enumerate(lines):
        if 0 in line:
            out[i] = 0
        if 1 in line:
            out[i] = 1
    return out


def _independent_decoder(sd: dict, prefix: str, cfg: MeDSLIPConfig, queries, memory):
    """Run a decoder with torch's TransformerDecoderLayer; returns (output Q x B x d, last-layer attn)."""
    tgt = queries
    attn = None
    for i in range(cfg.num_layers):
        layer = nn.TransformerDecoderLayer(cfg.d_model, cfg.num_heads, cfg.dim_feedforward, cfg.dropout,
                                           norm_first=True)
        layer.load_state_dict({k[len(f"{prefix}.layers.{i}."):]: v for k, v in sd.items()
                               if k.startswith(f"{prefix}.layers.{i}.")})
        layer.eval()
        if i == cfg.num_layers - 1:
            h = tgt + layer.self_attn(layer.norm1(tgt), layer.norm1(tgt), layer.norm1(tgt))[0]
            attn = layer.multihead_attn(layer.norm2(h), memory, memory, need_weights=True)[1]
        tgt = layer(tgt, memory)
    out = F.layer_norm(tgt, (cfg.d_model,), sd[f"{prefix}.norm.weight"], sd[f"{prefix}.norm.bias"])
    return out, attn


@torch.no_grad()
def make_fixture(path: Path, seed: int, batch: int, size: int, backbone: str = "resnet18", layers: int = 2) -> Path:
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    cfg = MeDSLIPConfig(backbone=backbone, num_layers=layers, text_width=96)
    model = MeDSLIP(cfg)
    for module in model.modules():  # randomise BatchNorm statistics so that eval mode is not an identity
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.normal_(0, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    sd = {k: v.clone() for k, v in model.state_dict().items()}
    book_p, book_a = torch.randn(75, 96), torch.randn(51, 96)
    images = torch.randn(batch, 3, size, size)
    matrix = torch.from_numpy(rng.choice([-1, 0, 1], size=(batch, 51, 75), p=[0.9, 0.06, 0.04])).long()
    labels_p = torch.from_numpy(np.stack([_labels_by_loop(m, 0) for m in matrix.numpy()]))
    labels_a = torch.from_numpy(np.stack([_labels_by_loop(m, 1) for m in matrix.numpy()]))
    index_p, index_a = protocl_indices(matrix, 7, torch.Generator().manual_seed(seed))

    # independent forward
    resnet = getattr(torchvision.models, backbone)(weights=None)
    features = nn.Sequential(*list(resnet.children())[:-3])
    features.load_state_dict({k[len("res_features."):]: v for k, v in sd.items() if k.startswith("res_features.")})
    features.eval()
    x = features(images).flatten(2).transpose(1, 2)
    lin = lambda name, t: F.linear(t, sd[f"{name}.weight"], sd[f"{name}.bias"])  # noqa: E731
    mask = lin("mask_generator", x)
    xp = lin("res_l2_pathology", F.relu(lin("res_l1_pathology", mask * x)))
    xa = lin("res_l2_anatomy", F.relu(lin("res_l1_anatomy", (1 - mask) * x)))
    qp = lin("pathology_embedding_layer", book_p).unsqueeze(1).repeat(1, batch, 1)
    qa = lin("pathology_embedding_layer", book_a).unsqueeze(1).repeat(1, batch, 1)
    fp, attn_p = _independent_decoder(sd, "decoder_pathology", cfg, qp, xp.transpose(0, 1))
    fa, attn_a = _independent_decoder(sd, "decoder_anatomy", cfg, qa, xa.transpose(0, 1))
    fp, fa = fp.transpose(0, 1), fa.transpose(0, 1)

    model.set_books(book_p, book_a)
    model.eval()
    inputs = {"images": images, "labels_pathology": labels_p, "labels_anatomy": labels_a, "matrix": matrix,
              "sample_index_pathology": index_p, "sample_index_anatomy": index_a}
    losses = loop_losses(model, fp, fa, inputs)
    tensors = {f"state_dict.{k}": v.contiguous() for k, v in sd.items()}
    tensors["book.pathology"], tensors["book.anatomy"] = book_p, book_a
    tensors.update({f"input.{k}": v.contiguous() for k, v in inputs.items()})
    tensors.update({f"expected.{k}": v.reshape(1).float() for k, v in losses.items()})
    tensors["expected.logits_pathology"] = lin("classifier_pathology", fp).contiguous()
    tensors["expected.logits_anatomy"] = lin("classifier_anatomy", fa).contiguous()
    tensors["expected.attn_pathology_last"] = attn_p.contiguous()
    tensors["expected.attn_anatomy_last"] = attn_a.contiguous()
    official = {"d_model": cfg.d_model, "H": cfg.num_heads, "N": layers, "res_base_model": backbone,
                "num_queries": 75, "dropout": cfg.dropout, "attribute_set_size": 2, "text_encoder": "x"}
    save_file(tensors, str(path), metadata={"config": json.dumps(official), "image_size": str(size),
                                            "mode": "independent reference (tests)", "source": "tests"})
    return path
