"""Reproduce a CheXzero fixture (``model`` = ``chexzero``) through the user path.

Each ``state_dict.ckpt<k>.*`` group goes through :func:`baselines.chexzero.model.load_openai_clip` (the loader a
downloaded ``.pt`` goes through after being read); the images are preprocessed from ``input.h5_images``;
the prompts are made from the metadata labels and template and tokenised by us.
"""

from __future__ import annotations

import json

import torch

from baselines.chexzero import zero_shot as zs
from baselines.chexzero.model import load_openai_clip
from baselines.reference import ATOL, Check, prefixed


def _ckpt_names(tensors) -> list[str]:
    return sorted({k.split(".")[1] for k in tensors if k.startswith("state_dict.")})


@torch.no_grad()
def reproduce(tensors: dict, meta: dict) -> list[Check]:
    labels = json.loads(meta["labels"])
    template = tuple(json.loads(meta.get("pair_template", json.dumps(list(zs.PAIR_TEMPLATE)))))
    h5 = tensors["input.h5_images"]
    checks: list[Check] = []
    pixel = tensors["input.pixel_values"]
    size = pixel.shape[-1]
    ours = zs.preprocess_h5(h5, size, antialias=True)
    checks.append(Check("input.pixel_values", pixel, ours[:, :1]))
    checks.append(Check("expected.pixel_values_antialias_false", tensors["expected.pixel_values_antialias_false"],
                        zs.preprocess_h5(h5, size, antialias=False)[:, :1]))
    pos_texts, neg_texts = zs.prompts(labels, template)
    probs, zscores = [], []
    for k in _ckpt_names(tensors):
        model, config = load_openai_clip(prefixed(tensors, f"state_dict.{k}."), source=f"fixture {k}")
        tok_pos = zs.tokenize(pos_texts, config.context_length)
        tok_neg = zs.tokenize(neg_texts, config.context_length)
        if k == _ckpt_names(tensors)[0]:
            checks.append(Check("input.text_tokens_pos", tensors["input.text_tokens_pos"], tok_pos, atol=0))
            checks.append(Check("input.text_tokens_neg", tensors["input.text_tokens_neg"], tok_neg, atol=0))
        e = f"expected.{k}."
        img = model.encode_image(ours)
        checks.append(Check(e + "image_features", tensors[e + "image_features"], img))
        feats_pos = torch.cat([model.encode_text(tok_pos[i:i + 1]) for i in range(len(labels))])
        feats_neg = torch.cat([model.encode_text(tok_neg[i:i + 1]) for i in range(len(labels))])
        checks.append(Check(e + "text_features_pos", tensors[e + "text_features_pos"], feats_pos))
        checks.append(Check(e + "text_features_neg", tensors[e + "text_features_neg"], feats_neg))
        w_pos, w_neg = zs.class_weights(model, [tok_pos]), zs.class_weights(model, [tok_neg])
        checks.append(Check(e + "zeroshot_weights_pos", tensors[e + "zeroshot_weights_pos"], w_pos))
        checks.append(Check(e + "zeroshot_weights_neg", tensors[e + "zeroshot_weights_neg"], w_neg))
        cos_pos, cos_neg = zs.cosines(img, w_pos), zs.cosines(img, w_neg)
        checks.append(Check(e + "cos_pos", tensors[e + "cos_pos"], cos_pos))
        checks.append(Check(e + "cos_neg", tensors[e + "cos_neg"], cos_neg))
        prob = zs.pair_softmax(cos_pos, cos_neg)
        probs.append(prob)
        checks.append(Check(e + "prob", tensors[e + "prob"], prob, atol=ATOL))
        z = zs.zscore_sigmoid(cos_pos)
        zscores.append(z)
        # the z-score divides the cosine errors by std(cos) over the labels: the embeddings' relative tolerance
        checks.append(Check(e + "zscore_sigmoid_pos", tensors[e + "zscore_sigmoid_pos"], z))
        logits = model(ours, torch.cat([tok_pos, tok_neg]))
        if isinstance(logits, dict):
            scale = logits["logit_scale"]
            li = scale * logits["image_features"] @ logits["text_features"].T
        else:
            li = logits[2] * logits[0] @ logits[1].T
        checks.append(Check(e + "logits_per_image_posneg", tensors[e + "logits_per_image_posneg"], li))
    checks.append(Check("expected.prob_ensemble", tensors["expected.prob_ensemble"], zs.ensemble(probs), atol=ATOL))
    return checks


__all__ = ["reproduce"]
