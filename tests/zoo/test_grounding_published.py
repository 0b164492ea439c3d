"""Issue 15, item 5: ``--grounding-postprocess published`` applies each model's own published rule (MeDSLIP,
MedKLIP, GLoRIA, BioViL), recorded; models that publish none are refused. Before, one MeDSLIP rule (batch maximum,
``> 0``) was applied to every model, MedKLIP included, whose script binarises its raw attention at ``> 0.008``."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from cxrbench.metrics.grounding_postprocess import PublishedGrounding, published_rule


def _rule(name):
    from cxrbench.models.biovil import BiovilAdapter
    from cxrbench.models.gloria import GloriaAdapter
    from cxrbench.models.medklip import MedKLIPAdapter
    from cxrbench.models.medslip import MedslipAdapter

    return {"medslip": MedslipAdapter, "medklip": MedKLIPAdapter, "gloria": GloriaAdapter,
            "biovil": BiovilAdapter}[name].published_grounding["published"]


def test_every_grounding_zoo_model_declares_its_own_rule():
    thresholds = {name: _rule(name).threshold for name in ("medslip", "medklip", "gloria", "biovil")}
    assert thresholds == {"medslip": 0.0, "medklip": 0.008, "gloria": None, "biovil": None}
    assert _rule("medklip").normalise == "none" and _rule("medslip").normalise == "batch-max"
    assert {_rule(n).source for n in thresholds}.__len__() == 4


def test_medklip_keeps_raw_attention_and_repeats_patches():
    grid = torch.tensor([[[0.001, 0.002], [0.009, 0.020]]])
    maps = _rule("medklip").apply(grid, 32)
    assert maps.shape == (1, 32, 32)
    torch.testing.assert_close(maps[0, :16, :16], torch.full((16, 16), 0.001))  # not divided by any maximum
    torch.testing.assert_close(maps[0, 16:, 16:], torch.full((16, 16), 0.020))
    assert int((maps > 0.008).sum()) == 2 * 16 * 16
    with pytest.raises(ValueError, match="not a multiple"):
        _rule("medklip").apply(grid, 33)


def test_gloria_expands_with_scikit_image_and_normalises_each_map():
    from skimage.transform import pyramid_expand

    rng = np.random.default_rng(0)
    grid = torch.from_numpy(rng.random((2, 19, 19))).float()
    rule = _rule("gloria")
    maps = rule.apply(grid, 64)
    assert maps.shape == (2, 64, 64)
    assert torch.allclose(maps.amin(dim=(1, 2)), torch.zeros(2)) and torch.allclose(maps.amax(dim=(1, 2)), torch.ones(2))
    # the expansion is the library's (x16, sigma 20), then a bilinear resize to the evaluated size
    ref = pyramid_expand(grid[0].double().numpy(), upscale=16, sigma=20, order=1, mode="reflect")
    assert ref.shape == (304, 304)
    ref = torch.nn.functional.interpolate(torch.from_numpy(ref).float()[None, None], size=(64, 64), mode="bilinear",
                                          align_corners=False, antialias=True)[0, 0]
    ref = (ref - ref.min()) / (ref.max() - ref.min())
    torch.testing.assert_close(maps[0], ref, atol=1e-5, rtol=0)
    # sigma 20 px smooths a single hot region into a broad blob (the protocol's bilinear map would stay a square)
    hot = torch.zeros(1, 19, 19)
    hot[0, 9, 9] = 1.0
    blob = rule.apply(hot, 304)[0]
    assert float((blob > 0.5).float().mean()) > 16 * 16 / 304 ** 2


def test_biovil_map_is_used_as_given():
    rule = _rule("biovil")
    maps = torch.randn(2, 48, 48)
    torch.testing.assert_close(rule.apply(maps, 48), maps)
    with pytest.raises(ValueError, match="image-size"):
        rule.apply(torch.randn(2, 14, 14), 48)


def test_models_without_a_rule_are_refused_in_one_line():
    class NoRule:
        name = "clip"

    with pytest.raises(ValueError, match="clip declares no published grounding post-processing"):
        published_rule(NoRule(), "published")
    from cxrbench.models.medklip import MedKLIPAdapter

    with pytest.raises(ValueError, match="no 'published-anatomy'"):
        published_rule(MedKLIPAdapter, "published-anatomy")
    with pytest.raises(ValueError, match="normalise"):
        PublishedGrounding("x", normalise="z-score", upsample="repeat", threshold=0.0)


@pytest.fixture(scope="module")
def rsna_root(tmp_path_factory):
    from cxrbench.synth import generate

    return generate("rsna-pneumonia", tmp_path_factory.mktemp("synth-pp") / "rsna", n=120, size=96, seed=5,
                    progress=False)


@pytest.mark.parametrize("model,checkpoint,threshold", [("medklip", "random-reduced", 0.008),
                                                        ("gloria", "random-reduced", None)])
def test_published_postprocessing_end_to_end(model, checkpoint, threshold, rsna_root, tmp_path, no_network):
    from typer.testing import CliRunner

    from cxrbench.cli import app
    from cxrbench.results import validate_record

    out = tmp_path / "results"
    result = CliRunner().invoke(app, ["run", "--model", model, "--checkpoint", checkpoint, "--task", "rsna-ground",
                                      "--grounding-postprocess", "published", "--image-size", "64", "--data-root",
                                      str(rsna_root), "--out", str(out), "--n-boot", "10", "--device", "cpu",
                                      "--no-progress"])
    assert result.exit_code == 0, result.output
    record = json.loads((out / model / "rsna-ground" / "frac-none_seed-none.json").read_text())
    validate_record(record)
    assert record["evaluation"]["grounding_postprocess"] == "published"
    selection = record["selection"]
    rule = _rule(model)
    assert selection["postprocess_rule"] == rule.describe()
    if threshold is None:  # no published binarisation: the protocol's validation choice on min-max maps
        assert selection["chosen_on"] in ("val", "fixed") and "maps:" in selection["threshold_rule"]
    else:
        assert selection["chosen_on"] == "fixed" and selection["threshold"] == threshold
    assert record["summary"]["pointing_game"]["value"] is not None
