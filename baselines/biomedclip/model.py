"""BiomedCLIP as open_clip builds it, without the hub.

open_clip's ``HFTextEncoder`` reads its configuration with ``AutoConfig.from_pretrained(hf_model_name)`` while the
model is being built, even when the weights come from a local file. Here the text tower's ``hf_model_name`` is
pointed at a temporary folder holding only a ``config.json`` (the released BERT values, :data:`RELEASED_BERT`, or the
configuration of a local folder the user gives) with ``hf_model_pretrained`` off; the weights then come from the
released checkpoint, loaded strictly.
"""

from __future__ import annotations

import contextlib
import copy
import json
import tempfile
from pathlib import Path
from typing import Any, Iterator, Mapping

import torch
from torch import Tensor, nn

from baselines.state_dict import cast_floats, load_strict, read_state_dict, strip_prefixes, unwrap

REPO = "microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224"
CONFIG_FILE = "open_clip_config.json"
WEIGHT_FILES = ("open_clip_pytorch_model.bin", "open_clip_model.safetensors")
TEXT_MODEL = "microsoft/BiomedNLP-BiomedBERT-base-uncased-abstract"
#: Saved by older transformers, dropped by open_clip before loading.
LEGACY_KEYS = ("text.transformer.embeddings.position_ids",)

#: ``model_cfg`` of the released ``open_clip_config.json``.
RELEASED_MODEL_CFG: dict[str, Any] = {
    "embed_dim": 512,
    "vision_cfg": {"timm_model_name": "vit_base_patch16_224", "timm_model_pretrained": False, "timm_pool": "",
                   "timm_proj": "linear", "image_size": 224},
    "text_cfg": {"hf_model_name": TEXT_MODEL, "hf_tokenizer_name": TEXT_MODEL, "hf_proj_type": "mlp",
                 "hf_pooler_type": "cls_last_hidden_state_pooler", "context_length": 256},
}
#: The released preprocessing (open_clip's eval transform with the OpenAI CLIP mean / std).
RELEASED_PREPROCESS = {"mean": [0.48145466, 0.4578275, 0.40821073], "std": [0.26862954, 0.26130258, 0.27577711],
                       "size": 224, "interpolation": "bicubic", "resize_mode": "shortest", "crop": "centre"}
#: PubMedBERT / BiomedBERT-base-uncased-abstract (BERT-base, vocabulary 30522).
RELEASED_BERT: dict[str, Any] = {
    "model_type": "bert", "architectures": ["BertForMaskedLM"], "vocab_size": 30522, "hidden_size": 768,
    "num_hidden_layers": 12, "num_attention_heads": 12, "intermediate_size": 3072, "hidden_act": "gelu",
    "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1, "max_position_embeddings": 512,
    "type_vocab_size": 2, "initializer_range": 0.02, "layer_norm_eps": 1e-12, "pad_token_id": 0,
}


@contextlib.contextmanager
def _local_text_config(bert: Mapping[str, Any]) -> Iterator[str]:
    """A temporary folder holding ``config.json`` = ``bert`` (what open_clip's AutoConfig call reads)."""
    with tempfile.TemporaryDirectory(prefix="biomedclip-text-") as folder:
        Path(folder, "config.json").write_text(json.dumps(dict(bert)))
        yield folder


@contextlib.contextmanager
def _timm_overrides(overrides: Mapping[str, Any] | None) -> Iterator[None]:
    """Pass ``overrides`` (embed_dim, depth, num_heads, img_size ...) to the timm trunk open_clip creates."""
    if not overrides:
        yield
        return
    import open_clip.timm_model as tm

    original = tm.timm.create_model

    def create(name, *args, **kwargs):
        return original(name, *args, **{**kwargs, **overrides})

    tm.timm.create_model = create
    try:
        yield
    finally:
        tm.timm.create_model = original


def build_biomedclip(model_cfg: Mapping[str, Any] = RELEASED_MODEL_CFG, bert: Mapping[str, Any] = RELEASED_BERT,
                     device: str = "cpu") -> nn.Module:
    """open_clip ``CustomTextCLIP`` of ``model_cfg`` with the text configuration ``bert`` (no hub access).

    ``vision_cfg["timm_kwargs"]`` (our extension, absent from released configs) passes size overrides
    (``embed_dim``, ``depth``, ``num_heads``, ``img_size``) to the timm trunk: small random stand-ins of the same
    architecture. ``device="meta"`` builds the model without memory (for checking a key manifest).
    """
    from huggingface_hub import constants
    from open_clip.model import CustomTextCLIP

    cfg = copy.deepcopy(dict(model_cfg))
    text_cfg = dict(cfg.pop("text_cfg"))
    vision_cfg = dict(cfg.pop("vision_cfg"))
    timm_overrides = vision_cfg.pop("timm_kwargs", None)
    before = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = True  # a reference to the hub here would be a bug: fail instead of fetching
    try:
        with _local_text_config(bert) as folder, _timm_overrides(timm_overrides), torch.device(device):
            text_cfg.update(hf_model_name=folder, hf_model_pretrained=False)
            text_cfg.pop("hf_tokenizer_name", None)
            vision_cfg["timm_model_pretrained"] = False
            model = CustomTextCLIP(embed_dim=cfg.pop("embed_dim"), vision_cfg=vision_cfg, text_cfg=text_cfg, **cfg)
    finally:
        constants.HF_HUB_OFFLINE = before
    return model.eval()


def prepare_state_dict(obj: Mapping) -> dict[str, Tensor]:
    sd = cast_floats(strip_prefixes(unwrap(obj), ("module.",)))
    return {k: v for k, v in sd.items() if k not in LEGACY_KEYS}


def load_biomedclip(state_dict: Mapping[str, Tensor], model_cfg: Mapping[str, Any] = RELEASED_MODEL_CFG,
                    bert: Mapping[str, Any] = RELEASED_BERT, source: str | None = None) -> nn.Module:
    """The model with ``state_dict`` loaded strictly (meta tensors: built and checked on the meta device)."""
    sd = prepare_state_dict(state_dict)
    meta = any(v.is_meta for v in sd.values())
    model = build_biomedclip(model_cfg, bert, device="meta" if meta else "cpu")
    load_strict(model, sd, ignore=LEGACY_KEYS, source=source)
    return model.eval()


def read_open_clip_config(path: str | Path) -> dict[str, Any]:
    """``(model_cfg, preprocess_cfg)`` of an ``open_clip_config.json``, as one dict with both keys."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: not a readable open_clip config ({exc})") from None
    if "model_cfg" not in data:
        raise ValueError(f"{path}: no 'model_cfg' (not an open_clip_config.json)")
    return data


def load_biomedclip_file(path: str | Path, model_cfg: Mapping[str, Any] = RELEASED_MODEL_CFG,
                         bert: Mapping[str, Any] = RELEASED_BERT) -> nn.Module:
    """The user path: read the released weights safely, then :func:`load_biomedclip`."""
    return load_biomedclip(read_state_dict(path), model_cfg, bert, source=str(path))


def random_biomedclip(model_cfg: Mapping[str, Any], bert: Mapping[str, Any], seed: int = 0) -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build_biomedclip(model_cfg, bert)


__all__ = ["CONFIG_FILE", "LEGACY_KEYS", "RELEASED_BERT", "RELEASED_MODEL_CFG", "RELEASED_PREPROCESS", "REPO",
           "TEXT_MODEL", "WEIGHT_FILES", "build_biomedclip", "load_biomedclip", "load_biomedclip_file",
           "prepare_state_dict", "random_biomedclip", "read_open_clip_config"]
