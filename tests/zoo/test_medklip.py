"""The published MedKLIP: fixture reproduction, the released layout loaded strictly through the user path,
the book cache, the zero-shot rule and mapping, and nih-zs / rsna-ground end to end offline."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
import torch

from baselines.medklip.book import encode_book
from baselines.medklip.checkpoint import infer_config, load_released, read_released, verify_file
from baselines.medklip.model import ENTITIES, NIH_TO_ENTITY, MedKLIP, MedKLIPConfig, grounding_maps, prob_present
from baselines.reference import evaluate, load_fixture
from baselines.state_dict import StateDictMismatch
from cxrbench.models.base import ClassSpec
from medslip.checkpoint import CheckpointMismatch

ZOO = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / "zoo"
FIXTURE = ZOO / "medklip_official_seed0_b3_s128.safetensors"
MANIFEST = ZOO / "medklip_official_state_dict_keys_resnet50.json"


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} not found (CI provides ../shared beside the project)")
    return path


def test_fixture_of_the_published_code_is_reproduced():
    from baselines.medklip.reference import reproduce

    tensors, meta = load_fixture(_need(FIXTURE))
    assert meta["model"] == "medklip"
    checks = reproduce(tensors, meta)
    assert {c.name for c in checks} == {k[len("expected."):] for k in tensors if k.startswith("expected.")}
    verdicts = [evaluate(c) for c in checks]
    assert all(v.ok for v in verdicts), [v for v in verdicts if not v.ok]


def test_reproduction_fails_on_a_perturbed_weight():
    from baselines.medklip.reference import reproduce

    tensors, meta = load_fixture(_need(FIXTURE))
    tensors["state_dict.classifier.bias"] = tensors["state_dict.classifier.bias"] + 0.01
    verdicts = {c.name: evaluate(c) for c in reproduce(tensors, meta)}
    assert not verdicts["logits_pathology"].ok and verdicts["attn_pathology_layer0"].ok


def _fake_release(manifest: dict[str, list[int]]) -> dict:
    """A dict laid out like the released checkpoint_final.pth, with the manifest's keys and shapes."""
    model = {"module." + k: (torch.zeros(shape, dtype=torch.long) if k.endswith("num_batches_tracked")
                             else torch.randn(1).expand(*shape)) for k, shape in manifest.items()}
    return {"model": model, "optimizer": {"state": {}, "param_groups": [{"lr": 1e-4, "params": [0, 1]}]},
            "lr_scheduler": {"last_epoch": 60}, "config": {"d_model": 256, "N": 4, "H": 4,
                                                          "res_base_model": "resnet50"}, "epoch": 60}


def test_released_manifest_loads_strictly_through_the_user_path(tmp_path):
    manifest = json.loads(_need(MANIFEST).read_text())
    path = tmp_path / "checkpoint_final.pth"
    torch.save(_fake_release(manifest), path)
    config = infer_config(manifest)
    assert (config.backbone, config.d_model, config.num_layers, config.text_width) == ("resnet50", 256, 4, 768)
    model = load_released(path, torch.randn(75, 768))
    assert set(model.state_dict()) == set(manifest)
    assert {k: list(v.shape) for k, v in model.state_dict().items()} == manifest
    assert torch.equal(model.state_dict()["classifier.weight"], read_released(path)["classifier.weight"])
    assert verify_file(path)["keys"] == len(manifest)


def test_a_mismatched_file_is_explained_in_one_grouped_message(tmp_path):
    manifest = json.loads(_need(MANIFEST).read_text())
    release = _fake_release(manifest)
    del release["model"]["module.decoder.layers.3.linear1.weight"]
    release["model"]["module.mask_generator.weight"] = torch.zeros(1024, 1024)
    release["model"]["module.mask_generator.bias"] = torch.zeros(1024)
    release["model"]["module.res_l2.weight"] = torch.zeros(128, 1024)
    path = tmp_path / "checkpoint_final.pth"
    torch.save(release, path)
    with pytest.raises(CheckpointMismatch) as info:
        load_released(path, torch.randn(75, 768), MedKLIPConfig())
    assert isinstance(info.value, StateDictMismatch)
    message = str(info.value)
    assert f"({path}): 1 missing, 2 unexpected, 1 mis-shaped" in message
    assert info.value.missing[0].startswith("decoder.layers.3.")
    assert "- mask_generator.* (2): bias, weight" in message and "res_l2.weight: file [128, 1024]" in message
    with pytest.raises(StateDictMismatch, match="mask_generator"):
        verify_file(path)


def test_arbitrary_pickles_are_refused(tmp_path):
    path = tmp_path / "checkpoint_final.pth"
    torch.save({"model": {"w": torch.zeros(1)}, "args": Path("x")}, path)
    with pytest.raises(ValueError, match="weights-only"):
        read_released(path)


def test_book_is_cached_under_file_and_encoder_fingerprint(tmp_path):
    from medslip.text import tiny_text_encoder

    encoder = tiny_text_encoder(width=32, layers=1, max_length=64)
    texts = [f"description of entity {i}" for i in range(4)]
    book, key = encode_book(encoder, texts, cache_dir=tmp_path)
    assert book.shape == (4, 32) and len(list(tmp_path.iterdir())) == 1
    encoder.encode = None  # a cache hit must not encode again
    again, key2 = encode_book(encoder, texts, cache_dir=tmp_path)
    assert key2 == key and torch.equal(again, book)
    other = tiny_text_encoder(width=32, layers=1, seed=1, max_length=64)
    assert encode_book(other, texts, cache_dir=tmp_path)[1] != key
    assert encode_book(other, texts[:3] + ["changed"], cache_dir=tmp_path)[1] not in (key,)
    assert len(list(tmp_path.iterdir())) == 3


def test_published_cxr14_mapping_and_rule():
    assert len(ENTITIES) == 75 and ENTITIES.index("pneumonia") == 20
    assert NIH_TO_ENTITY["Fibrosis"] == "tail_abnorm_obs" and NIH_TO_ENTITY["Pleural_Thickening"] == "thicken"
    assert [ENTITIES.index(NIH_TO_ENTITY[c]) for c in ("Atelectasis", "Infiltration", "Hernia")] == [12, 56, 59]
    logits = torch.tensor([[[0.0, 0.0], [1.0, 3.0]]])
    assert torch.allclose(prob_present(logits), torch.tensor([[0.5, torch.sigmoid(torch.tensor(2.0))]]))
    maps = [torch.full((1, 2, 4), float(i)) for i in range(5)]
    assert torch.equal(grounding_maps(maps), torch.full((1, 2, 2, 2), 2.5))  # layers 1..4


@pytest.fixture(scope="module")
def adapter():
    from cxrbench.models.medklip import load

    return load("random-reduced", image_size=64)


def test_adapter_zero_shot_ground_and_encoder(adapter):
    images = torch.randn(2, 3, 64, 64)
    classes = [ClassSpec("Fibrosis", "tail_abnorm_obs"), ClassSpec("Pneumonia", "pneumonia"),
               ClassSpec("COVID-19", None, "bilateral peripheral ground-glass opacities")]
    probs = adapter.zero_shot(images, classes)
    assert probs.shape == (2, 3) and ((probs > 0) & (probs < 1)).all()
    out = adapter.model(images)
    assert torch.allclose(probs[:, :2], prob_present(out["logits"])[:, [73, 20]], atol=1e-6)
    maps = adapter.ground(images, classes)
    assert maps.shape == (2, 3, 4, 4)
    assert torch.allclose(maps[:, :2].sum((-1, -2)), torch.ones(2, 2), atol=1e-5)
    assert torch.allclose(maps[:, 1], grounding_maps(out["attention"])[:, 20])
    enc = adapter.encoder()
    feats = enc.trunk(images)
    assert [f.shape[1] for f in feats] == list(enc.channels) and feats[-1].shape[-1] == 4
    info = adapter.describe()
    assert info["zoo"] is True and info["weights"] == "random" and info["checkpoint_sha256"] is None
    assert "P(present)" in info["rule"] and "NOT" in info["book"]
    with pytest.raises(ValueError, match="no description"):
        adapter.zero_shot(images, [ClassSpec("Unknown", "nonsense")])


def test_missing_checkpoint_is_a_one_line_error():
    from cxrbench.models.medklip import load

    with pytest.raises(ValueError, match="checkpoint_final.pth"):
        load(None)


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("network access in a test")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)


@pytest.fixture(scope="module")
def synth_roots(tmp_path_factory):
    from cxrbench.synth import generate

    base = tmp_path_factory.mktemp("synth-medklip")
    return {name: generate(name, base / name, n=n, size=96, seed=5, progress=False)
            for name, n in (("nih-cxr14", 120), ("rsna-pneumonia", 120))}


@pytest.mark.parametrize("task,dataset", [("nih-zs", "nih-cxr14"), ("rsna-ground", "rsna-pneumonia")])
def test_cli_run_end_to_end_offline(task, dataset, synth_roots, tmp_path, no_network):
    from typer.testing import CliRunner

    from cxrbench.cli import app
    from cxrbench.results import validate_record

    out = tmp_path / "results"
    result = CliRunner().invoke(app, ["run", "--model", "medklip", "--checkpoint", "random-reduced", "--task", task,
                                      "--image-size", "64", "--data-root", str(synth_roots[dataset]), "--out",
                                      str(out), "--n-boot", "10", "--device", "cpu", "--no-progress"])
    assert result.exit_code == 0, result.output
    record = json.loads((out / "medklip" / task / "frac-none_seed-none.json").read_text())
    validate_record(record)
    model = record["model"]
    assert model["name"] == "medklip" and model["zoo"] and model["weights"] == "random"
    assert model["config"]["backbone"] == "resnet18"
    if task == "rsna-ground":
        assert "last 4 layers" in model["grounding"] and record["n_eval"]["test_pairs"] > 0
        assert record["summary"]["pointing_game"]["value"] is not None
    else:
        assert record["summary"]["auc"]["value"] is not None


def test_random_weights_have_the_released_architecture():
    from cxrbench.models.medklip import load

    manifest = json.loads(_need(MANIFEST).read_text())
    adapter = load("random")
    assert {k: list(v.shape) for k, v in adapter.model.state_dict().items()} == manifest
    assert adapter.describe()["config"]["text_width"] == 768
