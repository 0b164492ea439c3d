"""The single-stream ablation: a parameter subset of MeDSLIP, its loss, checkpoint, training and tasks."""

from __future__ import annotations

import json

import pytest
import torch

from baselines.single_stream.checkpoint import is_single_stream_checkpoint, load_single_stream_checkpoint
from baselines.single_stream.model import SingleStreamMeDSLIP
from medslip import MeDSLIP, MeDSLIPConfig
from medslip.books import anatomy_texts, encode_books, pathology_texts
from medslip.checkpoint import CheckpointMismatch, load_checkpoint, save_checkpoint
from medslip.text import tiny_text_encoder

from .conftest import run_options

TINY = dict(backbone="resnet18", d_model=32, num_layers=2, num_heads=2, dim_feedforward=64, text_width=32)


@pytest.mark.parametrize("config", [TINY, {}], ids=["tiny", "released"])
def test_parameters_are_a_named_subset_of_medslips(config):
    dual = MeDSLIP(MeDSLIPConfig(**config)).state_dict()
    single = SingleStreamMeDSLIP(MeDSLIPConfig(**config)).state_dict()
    assert set(single) < set(dual)
    assert all(single[k].shape == dual[k].shape for k in single)
    dropped = {k.split(".")[0] for k in set(dual) - set(single)}
    assert dropped == {"cl_fc_pathology", "cl_fc_anatomy", "res_l1_anatomy", "res_l2_anatomy", "mask_generator",
                       "decoder_anatomy", "classifier_anatomy"}
    assert not any("anatomy" in k for k in single)


def test_same_seed_gives_the_same_initial_shared_parameters():
    torch.manual_seed(0)
    dual = MeDSLIP(MeDSLIPConfig(**TINY)).state_dict()
    torch.manual_seed(0)
    single = SingleStreamMeDSLIP(MeDSLIPConfig(**TINY)).state_dict()
    assert all(torch.equal(single[k], dual[k]) for k in single)


def _books():
    encoder = tiny_text_encoder(width=32)
    return encode_books(encoder)


def test_forward_and_existence_loss_only():
    torch.manual_seed(0)
    model = SingleStreamMeDSLIP(MeDSLIPConfig(**TINY), *_books())
    images = torch.randn(2, 3, 64, 64)
    matrix = torch.randint(-1, 2, (2, 51, 75))
    out = model(images)
    assert out["logits_pathology"].shape == (2, 75, 2) and len(out["attn_pathology"]) == 2
    assert out["attn_pathology"][0].shape == (2, 75, 16)
    losses = model.compute_loss({"images": images, "matrix": matrix})
    assert set(losses) == {"loss", "loss_ce_pathology"}
    losses["loss"].backward()
    assert model.res_features[0].weight.grad is not None


def test_checkpoint_round_trip_and_is_refused_by_the_dual_stream_loader(tmp_path):
    torch.manual_seed(0)
    model = SingleStreamMeDSLIP(MeDSLIPConfig(**TINY), *_books()).eval()
    path = save_checkpoint(model, tmp_path / "ckpt", pathology_texts(), anatomy_texts(), text_encoder="tiny-random")
    assert is_single_stream_checkpoint(path)
    again = load_single_stream_checkpoint(path).eval()
    x = torch.randn(1, 3, 64, 64)
    assert torch.allclose(model(x)["logits_pathology"], again(x)["logits_pathology"])
    with pytest.raises(CheckpointMismatch):
        load_checkpoint(path)


def test_train_single_stream_then_run_its_tasks(tmp_path, small_roots):
    from cxrbench.results import validate_record
    from cxrbench.run import run
    from cxrbench.train import train_method

    overrides = ["model.backbone=resnet18", "model.d_model=32", "model.num_layers=1", "model.num_heads=2",
                 "model.dim_feedforward=64", "text_encoder=tiny-random", "data.image_size=64", "train.epochs=1",
                 "train.batch_size=8", "train.log_every=1"]
    final = train_method("medslip-single-stream", "demo", overrides, data_root=small_roots["medslip-pretrain"],
                         out=tmp_path / "run", progress=False)
    meta = json.loads((final / "medslip.json").read_text())
    assert meta["extra"]["method"] == "medslip-single-stream" and meta["config"]["extra"]["architecture"] == "single-stream"
    for task, frac in (("nih-zs", None), ("nih-ground", None), ("siim-ft", 0.5)):
        root = small_roots["siim-acr" if task.startswith("siim") else "nih-cxr14"]
        path = run("medslip-single-stream", task, [frac], [0], run_options(tmp_path, root, checkpoint=final))[0]
        record = json.loads(path.read_text())
        validate_record(record)
        assert record["model"]["name"] == "medslip-single-stream" and record["model"]["checkpoint_sha256"]
