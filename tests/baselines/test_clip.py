"""The CLIP baseline: loss goes down, checkpoints round-trip, the encoder is torchvision's, tasks run."""

from __future__ import annotations

import json

import pytest
import torch
import torchvision

from cxrbench.models.clip import ClipAdapter, torchvision_resnet_from_timm
from baselines.clip.checkpoint import load_clip_checkpoint, save_clip_checkpoint
from baselines.clip.model import ClipConfig, ClipModel, load_tokenizer, resolve_text_tower, tokenize
from cxrbench.models.base import ClassSpec

from .conftest import run_options

REPORTS = ["Large right pleural effusion.", "No acute cardiopulmonary process.", "Left upper lobe pneumonia.",
           "Moderate cardiomegaly with pulmonary edema.", "Small left apical pneumothorax.",
           "Right lower lobe atelectasis.", "A 2 cm nodule in the right upper lobe.", "Bilateral effusions."]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    folder, identity, pretrained = resolve_text_tower("tiny-random", scratch=tmp_path_factory.mktemp("text"))
    config = ClipConfig(vision="resnet18", embed_dim=32, image_size=64, context_length=32)
    torch.manual_seed(0)
    return ClipModel.create(config, folder, pretrained), load_tokenizer(folder), identity


def test_a_few_steps_lower_the_contrastive_loss(tiny):
    model, tokenizer, _ = tiny
    torch.manual_seed(0)
    batch = {"images": torch.randn(len(REPORTS), 3, 64, 64), "input_ids": tokenize(tokenizer, REPORTS, 32)}
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-4)
    model.train()
    losses = []
    for _ in range(12):
        loss = model.compute_loss(batch)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert sum(losses[-3:]) / 3 < losses[0] - 0.3, losses


def test_checkpoint_round_trip(tiny, tmp_path):
    model, tokenizer, identity = tiny
    model.eval()
    path = save_clip_checkpoint(model, tmp_path / "ckpt", tokenizer, identity, extra={"note": "test"})
    again, tokenizer2, meta = load_clip_checkpoint(path)
    assert meta["text_encoder"] == identity and meta["extra"]["note"] == "test"
    assert model.clip.state_dict().keys() == again.clip.state_dict().keys()
    x = torch.randn(2, 3, 64, 64)
    ids = tokenize(tokenizer2, REPORTS[:3], 32)
    with torch.no_grad():
        assert torch.allclose(model.encode_image(x), again.encode_image(x), atol=1e-6)
        assert torch.allclose(model.encode_text(ids), again.encode_text(ids), atol=1e-6)


def test_image_trunk_has_torchvision_names_and_exports_an_encoder(tiny):
    model, tokenizer, _ = tiny
    trunk_keys = set(model.clip.visual.trunk.state_dict())
    assert trunk_keys == set(torchvision.models.resnet18(weights=None).state_dict()) - {"fc.weight", "fc.bias"}
    resnet = torchvision_resnet_from_timm(model.clip.visual.trunk, "resnet18")
    assert torch.equal(resnet.layer3[0].conv1.weight, model.clip.visual.trunk.layer3[0].conv1.weight)
    adapter = ClipAdapter(model, tokenizer)
    encoder = adapter.encoder()
    feats = encoder.trunk(torch.zeros(1, 3, 64, 64))
    assert [f.shape[1] for f in feats] == list(encoder.channels) and [f.shape[-1] for f in feats] == [32, 16, 8, 4]


def test_zero_shot_and_grounding_shapes(tiny):
    model, tokenizer, _ = tiny
    adapter = ClipAdapter(model.eval(), tokenizer)
    classes = [ClassSpec("Effusion", positive_prompts=("There is effusion.",), negative_prompts=("No effusion.",)),
               ClassSpec("COVID-19", description="bilateral ground-glass opacities")]
    x = torch.randn(3, 3, 64, 64)
    probs = adapter.zero_shot(x, classes)
    assert probs.shape == (3, 2) and bool(((probs > 0) & (probs < 1)).all())
    assert adapter.ground(x, classes).shape == (3, 2, 2, 2)


TINY_OVERRIDES = ["model.vision=resnet18", "model.embed_dim=32", "model.text_unlocked_layers=null",
                  "text_encoder=tiny-random", "text_max_length=32", "data.image_size=64", "train.epochs=2",
                  "train.batch_size=8", "train.log_every=1", "train.warmup_epochs=0"]


def test_cxrbench_train_clip_then_its_tasks(tmp_path, small_roots):
    from cxrbench.results import validate_record
    from cxrbench.run import run
    from cxrbench.train import train_method

    final = train_method("clip", "demo", TINY_OVERRIDES, data_root=small_roots["medslip-pretrain"],
                         out=tmp_path / "run", progress=False)
    meta = json.loads((final / "clip.json").read_text())
    assert meta["extra"]["method"] == "clip" and meta["extra"]["train"]["global_step"] > 0
    for task, frac in (("nih-zs", None), ("nih-ground", None), ("siim-seg", 0.5)):
        root = small_roots["siim-acr" if task.startswith("siim") else "nih-cxr14"]
        path = run("clip", task, [frac], [0], run_options(tmp_path, root, checkpoint=final))[0]
        record = json.loads(path.read_text())
        validate_record(record)
        assert record["model"]["name"] == "clip" and len(record["model"]["checkpoint_sha256"]) == 64


# ------------------------------------------------------------------------------- ViT image tower
@pytest.fixture(scope="module")
def tiny_vit(tmp_path_factory):
    folder, identity, pretrained = resolve_text_tower("tiny-random", scratch=tmp_path_factory.mktemp("vit-text"))
    config = ClipConfig(vision="vit", embed_dim=32, image_size=64, context_length=32, vit_width=64, vit_layers=2,
                        vit_heads=2, vit_patch_size=16, vit_pool="avg")
    torch.manual_seed(0)
    return ClipModel.create(config, folder, pretrained), load_tokenizer(folder), identity


def test_vit_config_is_checked():
    with pytest.raises(ValueError, match="multiple of vit_heads"):
        ClipConfig(vision="vit", vit_width=100, vit_heads=3)
    with pytest.raises(ValueError, match="multiple of vit_patch_size"):
        ClipConfig(vision="vit", image_size=100, vit_patch_size=16)
    with pytest.raises(ValueError, match="vit_pool"):
        ClipConfig(vision="vit", vit_pool="max")


def test_vit_tower_trains_round_trips_and_grounds_per_patch(tiny_vit, tmp_path):
    from cxrbench.models.base import UnsupportedSetting

    model, tokenizer, identity = tiny_vit
    assert type(model.clip.visual).__name__ == "VisionTransformer"
    ids = tokenize(tokenizer, REPORTS, 32)
    images = torch.randn(len(REPORTS), 3, 64, 64, generator=torch.Generator().manual_seed(1))
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    losses = []
    for _ in range(8):
        loss = model.compute_loss({"images": images, "input_ids": ids})["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < losses[0], losses
    model.eval()
    path = save_clip_checkpoint(model, tmp_path / "vit", tokenizer, identity)
    again, tokenizer2, _ = load_clip_checkpoint(path)
    with torch.no_grad():
        assert torch.allclose(model.encode_image(images[:2]), again.encode_image(images[:2]), atol=1e-6)
        patches = again.patch_embeddings(images[:2])
    assert patches.shape == (2, 4, 4, 32)  # 64 px / patch 16
    # with average pooling, the image embedding is the projection of the mean patch token
    with torch.no_grad():
        visual = again.clip.visual
        visual.output_tokens = True
        _, tokens = visual(images[:2])
        visual.output_tokens = False
        mean_token = torch.nn.functional.normalize(tokens.mean(1) @ visual.proj, dim=-1)
    assert torch.allclose(mean_token, again.encode_image(images[:2]), atol=1e-5)

    adapter = ClipAdapter(again, tokenizer2)
    assert adapter.settings == {"zs", "ground"}
    classes = [ClassSpec("Effusion", positive_prompts=("There is effusion.",), negative_prompts=("No effusion.",))]
    maps = adapter.ground(images[:3], classes)
    assert maps.shape == (3, 1, 4, 4) and not torch.equal(maps[0], maps[1])
    with pytest.raises(UnsupportedSetting, match="ViT"):
        adapter.encoder()
    with pytest.raises(ValueError, match="trained at 64 px"):
        ClipAdapter(again, tokenizer2, image_size=128)


def test_cxrbench_train_clip_with_a_vit_tower_then_zero_shot(tmp_path, small_roots):
    from cxrbench.results import validate_record
    from cxrbench.run import run
    from cxrbench.train import train_method

    vit = [o for o in TINY_OVERRIDES if not o.startswith("model.vision")] + [
        "model.vision=vit", "model.vit_width=64", "model.vit_layers=2", "model.vit_heads=2", "train.epochs=1"]
    final = train_method("clip", "demo", vit, data_root=small_roots["medslip-pretrain"], out=tmp_path / "run",
                         progress=False)
    meta = json.loads((final / "clip.json").read_text())
    assert meta["config"]["vision"] == "vit" and meta["extra"]["train"]["global_step"] > 0
    for task in ("nih-zs", "nih-ground"):
        path = run("clip-vit", task, [None], [0], run_options(tmp_path, small_roots["nih-cxr14"], checkpoint=final))[0]
        record = json.loads(path.read_text())
        validate_record(record)
        assert record["model"]["name"] == "clip-vit" and "ViT width 64" in record["model"]["architecture"]
    # the ResNet model name refuses nothing, the ViT name refuses a ResNet checkpoint
    from cxrbench.models.clip import ClipAdapter

    resnet = train_method("clip", "demo", TINY_OVERRIDES + ["train.epochs=1"], data_root=small_roots["medslip-pretrain"],
                          out=tmp_path / "resnet", progress=False)
    with pytest.raises(ValueError, match="evaluate it as --model clip"):
        ClipAdapter.from_checkpoint(resnet, name="clip-vit", vit=True)


def test_implicit_demo_training_follows_the_progress_option(tmp_path, monkeypatch):
    """`cxrbench run --no-progress` with no demo checkpoint yet: the demo training shows no bar either."""
    import cxrbench.train
    from cxrbench.models import clip
    from cxrbench.models.clip import ClipAdapter

    monkeypatch.setenv("CXRBENCH_CACHE", str(tmp_path / "cache"))
    calls = []
    monkeypatch.setattr(cxrbench.train, "train_method",
                        lambda method, config, out=None, progress=True: calls.append((method, config, progress))
                        or tmp_path / "ckpt")
    monkeypatch.setattr(ClipAdapter, "from_checkpoint", classmethod(lambda cls, path, **kw: (path, kw)))
    clip.load(progress=False)
    clip.load_vit(progress=False)
    assert calls == [("clip", "demo", False), ("clip", "demo-vit", False)]
