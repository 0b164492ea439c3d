"""Reproducing the MedCLIP fixtures (``../shared/fixtures/zoo/medclip_*.safetensors``) made with the
published code.

:func:`reproduce` takes a fixture's tensors and metadata and returns one
:class:`~baselines.reference.Check` per ``expected.*`` tensor (and the tokenisation of the recorded prompt
strings against the stored ids), for each of the three fixture kinds named by the ``model`` metadata:

- ``medclip-resnet`` / ``medclip-vit``: the model is built from the stand-in ``config`` metadata and loaded
  from the fixture's ``state_dict.*`` through the user path (:func:`baselines.medclip.checkpoint.load_into`:
  float16 cast, Swin renames for the installed transformers, derived buffers, strict load). Every
  embedding and logit is compared with ``1e-5 * max|expected|``;
- ``medclip-preprocess``: both published preprocessing paths on the stored raw images.

Nothing depends on the fixture's batch, image size or seed: shapes come from the tensors, the class order
from ``class_names``, the prompts from the ``prompts`` metadata.
"""

from __future__ import annotations

import json

import torch
from torch import Tensor

from baselines.reference import Check, prefixed

MODEL_KINDS = ("medclip-resnet", "medclip-vit", "medclip-preprocess")


def _meta_json(meta: dict[str, str], key: str, default=None):
    value = meta.get(key)
    if value is None:
        return default
    try:
        return json.loads(value)
    except (TypeError, ValueError):
        return value


def _preprocess_checks(tensors: dict[str, Tensor]) -> list[Check]:
    from baselines.medclip.preprocess import processor_pixel_values, zeroshot_dataset_pixel_values

    raw = prefixed(tensors, "input.raw_image.")
    images = [raw[k] for k in sorted(raw, key=int)]
    checks = []
    for name, fn in (("pixel_values_processor", processor_pixel_values),
                     ("pixel_values_zeroshot_dataset", zeroshot_dataset_pixel_values)):
        expected = tensors.get(f"expected.{name}")
        if expected is not None:
            size = int(expected.shape[-1])
            checks.append(Check(f"expected.{name}", expected, fn(images, size)))
    return checks


def _fixture_tokenizer(meta: dict[str, str]):
    """The packaged MiniLM tokenizer when the fixture names its vocabulary (md5), else None."""
    from baselines.medclip.tokenizer import TokenizerUnavailable, minilm_tokenizer, minilm_vocab_md5

    try:
        md5 = minilm_vocab_md5()
        if md5 and md5 in meta.get("tokenizer", ""):
            return minilm_tokenizer()
    except TokenizerUnavailable:
        pass
    return None


@torch.no_grad()
def _model_checks(tensors: dict[str, Tensor], meta: dict[str, str]) -> list[Check]:
    from baselines.medclip.checkpoint import load_into
    from baselines.medclip.model import MedClipConfig, build_model
    from baselines.medclip.zeroshot import PromptZeroShot, ZeroShotRule, class_scores, tokenize_class

    config = MedClipConfig.from_fixture_meta(_meta_json(meta, "config"))
    model = build_model(config)
    load_into(model, prefixed(tensors, "state_dict."), what="fixture state_dict")
    model.eval()

    pixels = tensors["input.pixel_values"].float()
    ids, masks = prefixed(tensors, "input.prompt_input_ids."), prefixed(tensors, "input.prompt_attention_mask.")
    order = sorted(ids, key=int)
    exp = prefixed(tensors, "expected.")
    checks: list[Check] = []

    def add(name: str, actual: Tensor) -> None:
        if name in exp:
            checks.append(Check(f"expected.{name}", exp[name], actual))

    add("vision_pooled", model.vision_model.pooled(pixels))
    add("vision_output", model.vision_model(pixels))
    img = model.encode_image(pixels)
    add("img_embeds", img)
    add("logit_scale_used", model.logit_scale_used())
    for i in order:
        add(f"text_pooled.{i}", model.text_model.pooled(ids[i], masks[i]))
        add(f"text_output.{i}", model.text_model(ids[i], masks[i]))
        txt = model.encode_text(ids[i], masks[i])
        add(f"text_embeds.{i}", txt)
        add(f"logits.{i}", model.compute_logits(img, txt))

    # the zero-shot rule through the user path: prompt strings -> per-class tokenisation -> scores
    class_names = _meta_json(meta, "class_names", [])
    prompts = _meta_json(meta, "prompts", {})
    tokenizer = _fixture_tokenizer(meta) if isinstance(prompts, dict) and prompts else None
    if tokenizer is not None and len(class_names) == len(order):
        for i, name in zip(order, class_names):
            enc = tokenize_class(tokenizer, prompts[name])
            checks.append(Check(f"tokenizer.input_ids.{i}", ids[i], enc["input_ids"], rtol=None, atol=0.0))
        for reduce, key in (("ensemble", "cls_logits_ensemble"), ("max", "cls_logits_max")):
            zs = PromptZeroShot(model, tokenizer, ZeroShotRule(reduce, "all"), lambda: pixels.device)
            add(key, zs.logits(img, [prompts[name] for name in class_names]))
    else:  # no tokenizer of the fixture's vocabulary here: the published classifier on the stored ids
        for reduce, key in (("ensemble", "cls_logits_ensemble"), ("max", "cls_logits_max")):
            scores = [class_scores(model.compute_logits(img, model.encode_text(ids[i], masks[i])), reduce)
                      for i in order]
            add(key, torch.stack(scores, 1))
    return checks


def reproduce(tensors: dict[str, Tensor], meta: dict[str, str]) -> list[Check]:
    """One check per expected tensor of a MedCLIP fixture (``model`` metadata: one of :data:`MODEL_KINDS`)."""
    kind = meta.get("model")
    if kind not in MODEL_KINDS:
        raise ValueError(f"not a MedCLIP fixture: model metadata {kind!r} (expected one of {', '.join(MODEL_KINDS)})")
    if kind == "medclip-preprocess":
        return _preprocess_checks(tensors)
    return _model_checks(tensors, meta)


def main(argv: list[str] | None = None) -> int:
    """``python -m baselines.medclip.reference FIXTURE...``: each check's difference; 0 only if all pass."""
    import sys

    from baselines.reference import evaluate, load_fixture

    paths = sys.argv[1:] if argv is None else argv
    if not paths:
        print("usage: python -m baselines.medclip.reference FIXTURE.safetensors [...]", file=sys.stderr)
        return 2
    ok = True
    for path in paths:
        tensors, meta = load_fixture(path)
        for v in (evaluate(c) for c in reproduce(tensors, meta)):
            ok &= v.ok
            print(f"{'ok  ' if v.ok else 'FAIL'} {path}: {v.name} {list(v.shape)} max|d|={v.max_abs:.3g} "
                  f"rel={v.rel:.3g} ({v.tolerance})")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())


__all__ = ["MODEL_KINDS", "main", "reproduce"]
