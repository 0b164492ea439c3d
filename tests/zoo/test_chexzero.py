"""CheXzero: the published-code fixture reproduced, the released key manifest through the user path, strict
verify with a readable diff, ensembles, and nih-zs / nih-ft end to end with random weights, sockets blocked."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from baselines.chexzero.model import VIT_B32, load_openai_clip, random_openai_clip
from baselines.state_dict import manifest_state_dict
from cxrbench.cli import app

from .conftest import WIDE, run_options, zoo_fixture

FIXTURE = "chexzero_official_seed0_b3_s224.safetensors"


def test_zoo_reference_reproduces_the_published_code():
    out = CliRunner().invoke(app, ["zoo", "reference", str(zoo_fixture(FIXTURE))], env=WIDE)
    assert out.exit_code == 0, out.output
    assert "expected.prob_ensemble" in out.output and "FAIL" not in out.output
    assert out.output.count(" ok") >= 25


@pytest.mark.slow
def test_a_wrong_rule_fails_the_fixture(monkeypatch):
    """The command can fail: scoring with logit_scale (a CLIP-style softmax) is caught."""
    from baselines.chexzero import zero_shot as zs
    from cxrbench.zoo.reference import check_fixture

    monkeypatch.setattr(zs, "pair_softmax", lambda p, n: torch.stack([p, n], -1).mul(4.1).softmax(-1)[..., 0])
    _, verdicts = check_fixture(zoo_fixture(FIXTURE))
    assert {v.name for v in verdicts if not v.ok} >= {"expected.ckpt0.prob", "expected.prob_ensemble"}


def test_released_manifest_loads_strictly_through_the_user_path():
    keys = json.loads(zoo_fixture("chexzero_official_state_dict_keys_vit_b32.json").read_text())
    dtypes = json.loads(zoo_fixture("chexzero_official_state_dict_dtypes_after_convert_weights_vit_b32.json").read_text())
    sd = manifest_state_dict(keys)
    half = [k for k, d in dtypes.items() if "16" in str(d)]
    assert len(keys) == 302 and half
    for k in half:  # the release's mixed layout
        sd[k] = sd[k].half()
    model, config = load_openai_clip({"state_dict": {"module." + k: v for k, v in sd.items()}}, source="manifest")
    assert config == VIT_B32
    assert all(p.dtype == torch.float32 for p in model.state_dict().values() if p.is_floating_point())


def _reduced():
    from cxrbench.models.chexzero import reduced_config

    return reduced_config("chexzero")


def test_verify_prints_renamed_and_missing_keys_in_one_message(tmp_path):
    sd = random_openai_clip(_reduced()).state_dict()
    good = tmp_path / "good.pt"
    torch.save({k: v.half() for k, v in sd.items()}, good)
    runner = CliRunner()
    out = runner.invoke(app, ["zoo", "verify", "chexzero", str(good)], env=WIDE)
    assert out.exit_code == 0 and "load strictly" in out.output, out.output
    bad = dict(sd)
    bad["visual.ln_post.wieght"] = bad.pop("visual.ln_post.weight")
    del bad["transformer.resblocks.1.mlp.c_fc.bias"]
    path = tmp_path / "bad.pt"
    torch.save(bad, path)
    out = runner.invoke(app, ["zoo", "verify", "chexzero", str(path)], env=WIDE)
    assert out.exit_code == 2, out.output
    assert "visual.ln_post.weight" in out.output and "visual.ln_post.wieght" in out.output
    assert "transformer.resblocks.1.mlp.c_fc.bias" in out.output and "Traceback" not in out.output
    path.write_bytes(b"not a checkpoint")
    out = runner.invoke(app, ["zoo", "verify", "chexzero", str(path)], env=WIDE)
    assert out.exit_code == 2 and "weights_only" in out.output


def test_ensemble_averages_the_probabilities(tmp_path):
    from cxrbench.models.base import ClassSpec
    from cxrbench.models.chexzero import load

    files = []
    for seed in (1, 2):
        path = tmp_path / f"ck{seed}.pt"
        torch.save(random_openai_clip(_reduced(), seed=seed).state_dict(), path)
        files.append(path)
    images = torch.randn(2, 3, 96, 96)
    classes = [ClassSpec("Effusion"), ClassSpec("Pleural_Thickening")]
    single = [load(f).zero_shot(images, classes) for f in files]
    both = load(Path(f"{files[1]},{files[0]}"))
    assert torch.allclose(both.zero_shot(images, classes), (single[0] + single[1]) / 2, atol=1e-6)
    ident = both.describe()
    assert ident["weights"] == "released" and len(ident["checkpoints_sha256"]) == 2 and ident["zoo"]
    assert ident["checkpoints"] == sorted(map(str, files))
    assert not torch.allclose(single[0], single[1])
    z = load(files[0], zero_shot_rule="chexzero-zscore-sigmoid").zero_shot(images, classes)
    assert not torch.allclose(z, single[0])
    with pytest.raises(ValueError, match="chexzero-pair-softmax"):
        load(files[0], zero_shot_rule="softmax")


@pytest.mark.parametrize("task", ["nih-zs", "nih-ft"])
def test_end_to_end_on_synthcxr_offline(task, tmp_path, nih_root, no_network):
    from cxrbench.results import validate_record
    from cxrbench.run import run

    opts = run_options(tmp_path, nih_root, checkpoint=Path("random-reduced"))
    path = run("chexzero", task, [None], [0], opts)[0]
    record = json.loads(path.read_text())
    validate_record(record)
    model = record["model"]
    assert model["zoo"] and model["weights"] == "random" and model["checkpoint_sha256"] is None
    assert model["zero_shot_rule"] == "chexzero-pair-softmax" and model["config"]["vision_width"] == 128
    assert record["summary"]["auc"]["value"] is not None
    assert not no_network


def test_verify_checks_a_released_key_manifest_without_weights(tmp_path):
    """`zoo verify` on the released keys (meta tensors through the same loader), and on a damaged copy."""
    manifest = zoo_fixture("chexzero_official_state_dict_keys_vit_b32.json")
    runner = CliRunner()
    out = runner.invoke(app, ["zoo", "verify", "chexzero", str(manifest)], env=WIDE)
    assert out.exit_code == 0 and "ViT-B/32 768 x 12" in out.output, out.output
    keys = json.loads(manifest.read_text())
    keys["visual.proj_renamed"] = keys.pop("visual.proj")
    del keys["ln_final.bias"]
    damaged = tmp_path / "damaged.json"
    damaged.write_text(json.dumps(keys))
    out = runner.invoke(app, ["zoo", "verify", "chexzero", str(damaged)], env=WIDE)
    assert out.exit_code == 2, out.output
    text = out.output
    assert "2 missing, 1 unexpected" in text and "visual.proj_renamed" in text and "ln_final.bias" in text
