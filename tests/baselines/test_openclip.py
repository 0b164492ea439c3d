"""The generic open_clip adapter: spec parsing, offline-first weights, nih-zs with a random RN50."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from baselines.openclip.adapter import OpenClipWeightsUnavailable, parse_spec, resolve_pretrained

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
