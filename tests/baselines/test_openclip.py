"""The generic open_clip adapter: spec parsing, offline-first weights, nih-zs with a random RN50; grounding
(ModifiedResNet and ViT towers), the ModifiedResNet encoder, settings per tower, ground / seg / ft end to end."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch
from torch import nn

from cxrbench.models.open_clip import OpenClipWeightsUnavailable, parse_spec, resolve_pretrained
from cxrbench.models.base import ClassSpec, UnsupportedSetting

from .conftest import run_options


def test_spec_forms():
    assert parse_spec("ViT-B-16:laion2b_s34b_b88k") == ("ViT-B-16", "laion2b_s34b_b88k")
    assert parse_spec("RN50:/w/rn50.pt") == ("RN50", "/w/rn50.pt")
    assert parse_spec("hf-hub:microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224")[1] is None
    with pytest.raises(ValueError, match="ARCH:TAG"):
        parse_spec("RN50")


def test_absent_weights_are_not_downloaded_and_say_how_to_get_them(tmp_path):
    try:
        resolve_pretrained("RN50", "yfcc15m", allow_download=False, cache_dir=str(tmp_path))
    except OpenClipWeightsUnavailable as exc:
        assert "CXRBENCH_ALLOW_DOWNLOAD" in str(exc)
    else:  # pragma: no cover - only on a machine that has these weights in its HF cache
        pytest.skip("RN50:yfcc15m weights are present in the local Hugging Face cache")
    assert not any(tmp_path.iterdir())
    with pytest.raises(ValueError, match="pretrained tag"):
        resolve_pretrained("RN50", "no-such-tag")


def test_random_rn50_runs_nih_zs_and_records_architecture_and_tag(tmp_path, small_roots):
    from cxrbench.results import validate_record
    from cxrbench.run import run

    opts = run_options(tmp_path, small_roots["nih-cxr14"], checkpoint=Path("RN50:random"))
    path = run("open-clip", "nih-zs", [None], [0], opts)[0]
    record = json.loads(path.read_text())
    validate_record(record)
    model = record["model"]
    assert model["architecture"] == "RN50" and model["pretrained"] == "random" and model["random_weights"]
    assert model["image_size"] == 224 and model["checkpoint_sha256"] is None
    assert record["summary"]["auc"]["value"] is not None


# --- grounding and encoders, per image tower (random weights, small images; nothing is downloaded) ---

SIZE = 64
CLASSES = [ClassSpec("Effusion", positive_prompts=("There is a pleural effusion.",),
                     negative_prompts=("No pleural effusion.",)),
           ClassSpec("Pneumothorax")]


@pytest.fixture(scope="module")
def rn50():
    from cxrbench.models.open_clip import load_open_clip

    return load_open_clip("RN50:random", image_size=SIZE)


@pytest.fixture(scope="module")
def vit():
    from cxrbench.models.open_clip import load_open_clip

    return load_open_clip("ViT-B-16:random", image_size=SIZE)


def _two_images() -> torch.Tensor:
    """Two normalised images that differ only in where a bright square is."""
    x = torch.zeros(2, 3, SIZE, SIZE)
    x[0, :, :24, :24] = 2.0
    x[1, :, 40:, 40:] = 2.0
    return x


def _minmax(maps: torch.Tensor) -> torch.Tensor:
    flat = maps.flatten(2)
    lo, hi = flat.min(-1, keepdim=True).values, flat.max(-1, keepdim=True).values
    return ((flat - lo) / (hi - lo).clamp_min(1e-12)).view_as(maps)


def test_settings_follow_the_image_tower(rn50, vit):
    from cxrbench.models.open_clip import tower_kind, unsupported_reasons

    assert rn50.tower == "modified-resnet" and rn50.settings == {"zs", "ground", "ft", "seg"}
    assert vit.tower == "vit" and vit.settings == {"zs", "ground"}
    with pytest.raises(UnsupportedSetting, match="ModifiedResNet"):
        vit.encoder()
    assert rn50.describe()["settings"] == ["ft", "ground", "seg", "zs"] and vit.describe()["grounding"]
    # any other tower (timm, Hugging Face, attention-pooled) is zero-shot classification only
    other = nn.Conv2d(3, 8, 3)
    assert tower_kind(other) is None
    assert set(unsupported_reasons(None, other)) == {"ground", "ft", "seg"}
    assert "Conv2d" in unsupported_reasons(None, other)["ground"]


def test_random_weights_are_the_same_for_every_load(rn50):
    from cxrbench.models.open_clip import load_open_clip

    again = load_open_clip("RN50:random", image_size=SIZE)
    assert torch.equal(again.model.visual.conv1.weight, rn50.model.visual.conv1.weight)
    assert torch.equal(again.model.text_projection, rn50.model.text_projection)


@pytest.mark.parametrize("tower, grid", [("rn50", SIZE // 32), ("vit", SIZE // 16)])
def test_ground_maps_have_the_patch_grid_and_respond_to_image_and_class(tower, grid, request):
    adapter = request.getfixturevalue(tower)
    maps = adapter.ground(_two_images(), CLASSES)
    assert maps.shape == (2, len(CLASSES), grid, grid) and bool(torch.isfinite(maps).all())
    # the bright square moves -> the (min-max normalised, as evaluated) map changes
    assert float((_minmax(maps)[0] - _minmax(maps)[1]).abs().max()) > 0.1
    # different prompt sets -> different maps
    assert not torch.allclose(maps[:, 0], maps[:, 1])
    # the map is cos(patch, positive) - cos(patch, negative)
    pos, neg = adapter.prompts.class_embeddings([c.prompt_sets() for c in CLASSES[:1]])
    patches = torch.nn.functional.normalize(adapter.patch_embeddings(_two_images()), dim=-1)
    expected = patches @ pos[0] - patches @ neg[0]
    assert torch.allclose(maps[:, 0], expected, atol=1e-5)


def test_rn50_patch_embeddings_are_the_attention_pool_value_path(rn50):
    """With uniform attention and no positional embedding, the pooled image embedding is exactly the
    mean of the projected positions (the pool's query token is itself the mean of the positions)."""
    adapter = copy.copy(rn50)
    adapter.model = copy.deepcopy(rn50.model)
    pool = adapter.model.visual.attnpool
    with torch.no_grad():
        pool.q_proj.weight.zero_()
        pool.q_proj.bias.zero_()
        pool.positional_embedding.zero_()
    x = _two_images() + 0.1 * torch.randn(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        pooled = adapter.model.encode_image(adapter._renormalise(x))
    assert torch.allclose(adapter.patch_embeddings(x).mean((1, 2)), pooled, atol=1e-4, rtol=1e-4)


def test_vit_patch_embeddings_are_the_last_blocks_tokens_normalised_and_projected(vit):
    visual = vit.model.visual
    if not hasattr(visual, "forward_intermediates"):
        pytest.skip("this open_clip has no forward_intermediates to cross-check with")
    x = _two_images()
    with torch.no_grad():
        out = visual.forward_intermediates(vit._renormalise(x), indices=1, normalize_intermediates=True,
                                           intermediates_only=True, output_fmt="NCHW")
    expected = out["image_intermediates"][-1].permute(0, 2, 3, 1) @ visual.proj
    assert torch.allclose(vit.patch_embeddings(x), expected, atol=1e-5)
    assert visual.output_tokens is False  # switched on for the call only


def test_rn50_encoder_features_have_the_declared_channels_and_strides(rn50):
    encoder = rn50.encoder()
    assert encoder.channels == (64, 256, 512, 1024) and "ModifiedResNet" in encoder.arch
    x = _two_images()
    feats = encoder.trunk(x)
    assert [f.shape[1] for f in feats] == list(encoder.channels)
    assert [SIZE // f.shape[-1] for f in feats] == [2, 4, 8, 16]
    # the random layer4 continues the trunk: twice the channels, stride 32, a fresh module each time
    layer4 = encoder.layer4()
    assert layer4(feats[-1]).shape == (2, 2 * encoder.channels[-1], SIZE // 32, SIZE // 32)
    assert layer4 is not encoder.layer4() and len(layer4) == len(rn50.model.visual.layer4)
    # the trunk re-normalises like zero-shot does and runs the tower's own stem
    visual = rn50.model.visual
    with torch.no_grad():
        stem = visual.act3(visual.bn3(visual.conv3(visual.act2(visual.bn2(visual.conv2(
            visual.act1(visual.bn1(visual.conv1(rn50._renormalise(x))))))))))
        assert torch.allclose(encoder.trunk(x)[0], stem, atol=1e-5)
    # the trunk is a copy: training it leaves the zero-shot model untouched
    with torch.no_grad():
        encoder.trunk.layers[0][0].conv1.weight.add_(1.0)
    assert not torch.equal(encoder.trunk.layers[0][0].conv1.weight, visual.layer1[0].conv1.weight)


def test_cxrbench_run_open_clip_rn50_ground(tmp_path, small_roots):
    from typer.testing import CliRunner

    from cxrbench.cli import app
    from cxrbench.results import validate_record

    root = small_roots["siim-acr"]
    out = tmp_path / "results"
    result = CliRunner().invoke(app, ["run", "--model", "open-clip", "--checkpoint", "RN50:random", "--task",
                                      "siim-ground", "--image-size", str(SIZE), "--data-root", str(root), "--out",
                                      str(out), "--n-boot", "20", "--device", "cpu", "--no-progress"])
    assert result.exit_code == 0, result.output
    ground = json.loads((out / "open-clip" / "siim-ground" / "frac-none_seed-none.json").read_text())
    validate_record(ground)
    assert ground["model"]["image_tower"] == "ModifiedResNet" and "v_proj" in ground["model"]["grounding"]
    assert ground["n_eval"]["test_pairs"] > 0 and ground["summary"]["pointing_game"]["value"] is not None


def test_open_clip_rn50_seg_and_ft_run_on_its_encoder(tmp_path, small_roots):
    from cxrbench.results import validate_record
    from cxrbench.run import run

    opts = run_options(tmp_path, small_roots["siim-acr"], checkpoint=Path("RN50:random"), image_size=SIZE)
    for task in ("siim-seg", "siim-ft"):
        record = json.loads(run("open-clip", task, [0.5], [0], opts)[0].read_text())
        validate_record(record)
        assert "ModifiedResNet" in record["training"]["encoder"]
        assert all(v["value"] is not None for v in record["summary"].values())
    assert record["training"]["layer4"] == "random open_clip RN50 ModifiedResNet layer4"


def test_vit_has_no_encoder_and_is_refused_before_any_work(tmp_path, small_roots):
    from cxrbench.run import run
    from cxrbench.sweep import run_sweep

    opts = run_options(tmp_path, small_roots["siim-acr"], checkpoint=Path("ViT-B-16:random"), image_size=SIZE)
    with pytest.raises(UnsupportedSetting, match="ModifiedResNet"):
        run("open-clip", "siim-seg", [0.5], [0], opts)
    assert not (opts.out / "open-clip").exists()
    from typer.testing import CliRunner

    from cxrbench.cli import app

    result = CliRunner().invoke(app, ["run", "--model", "open-clip", "--checkpoint", "ViT-B-16:random", "--task",
                                      "siim-ft", "--image-size", str(SIZE), "--out", str(opts.out), "--no-progress"])
    assert result.exit_code == 2 and "does not support the 'ft' setting" in result.output
    # a sweep skips the job (the model offers the setting, this checkpoint does not) instead of failing
    assert run_sweep(["open-clip"], ["siim-ft"], [0.5], [0], options=opts,
                     model_options={"open-clip": {"checkpoint": "ViT-B-16:random"}}) == []
