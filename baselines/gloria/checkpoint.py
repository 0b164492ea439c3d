"""The released GLoRIA checkpoints (``chexpert_resnet50.ckpt``): PyTorch Lightning 1.1.4 files.

A Lightning checkpoint is a ``torch.save`` dict with ``state_dict`` (every key ``gloria.`` + the module's key),
``hyper_parameters`` (an OmegaConf config object) and the trainer state. Reading it never runs code from the
file:

1. ``torch.load(weights_only=True)`` first (a file holding only tensors and plain containers);
2. when the file holds other objects (the OmegaConf ``hyper_parameters``), a restricted unpickler: the globals
   of torch's weights-only allowlist (tensor rebuilding, storages, ``OrderedDict``) are resolved, every other
   global becomes an inert :class:`OpaqueObject` (no import of the named module, no constructor of it runs),
   and only ``state_dict`` is used.

The ``gloria.`` prefix is removed (the published ``load_gloria`` does ``k.split("gloria.")[-1]``), the
``text_encoder.model.embeddings.position_ids`` buffer of transformers 4.2 (persistent then, not any more) is
checked to be ``arange`` and dropped, and the state dict is loaded strictly.
"""

from __future__ import annotations

import pickle
import types
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import Tensor

PREFIX = "gloria."
POSITION_IDS = "text_encoder.model.embeddings.position_ids"


class OpaqueObject:
    """Stands in for a non-tensor object of a checkpoint: records its arguments and state, runs nothing."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args, self.kwargs = args, kwargs

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __setitem__(self, key: Any, value: Any) -> None:  # objects pickled as dict subclasses
        self.__dict__.setdefault("items", {})[key] = value

    def append(self, value: Any) -> None:  # and as list subclasses
        self.__dict__.setdefault("values", []).append(value)

    def extend(self, values: Any) -> None:
        self.__dict__.setdefault("values", []).extend(values)


def _allowed_globals() -> dict[str, Any]:
    from torch import _weights_only_unpickler as wou

    allowed = dict(wou._get_allowed_globals())
    allowed.update(wou._get_user_allowed_globals())
    return allowed


class _RestrictedUnpickler(pickle.Unpickler):
    allowed: dict[str, Any] = {}

    def find_class(self, module: str, name: str) -> Any:
        obj = self.allowed.get(f"{module}.{name}")
        if obj is not None:
            return obj
        return type(name, (OpaqueObject,), {"__module__": f"opaque.{module}"})


def _restricted_pickle_module() -> types.ModuleType:
    module = types.ModuleType("restricted_pickle")
    _RestrictedUnpickler.allowed = _allowed_globals()
    module.Unpickler = _RestrictedUnpickler  # type: ignore[attr-defined]
    module.load = pickle.load  # type: ignore[attr-defined]  (unused by torch's zip reader)
    module.__version__ = "restricted"  # type: ignore[attr-defined]
    return module


def read_checkpoint_object(path: str | Path) -> tuple[Any, str]:
    """(the loaded object, how it was read: ``weights_only`` or ``restricted``)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"GLoRIA checkpoint {path} does not exist")
    try:
        return torch.load(path, map_location="cpu", weights_only=True), "weights_only"
    except pickle.UnpicklingError:
        pass
    try:
        obj = torch.load(path, map_location="cpu", weights_only=False, pickle_module=_restricted_pickle_module())
    except Exception as exc:
        raise ValueError(f"{path}: not a readable torch checkpoint ({type(exc).__name__}: "
                         f"{str(exc).splitlines()[0] if str(exc) else ''})") from exc
    return obj, "restricted"


def unwrap_state_dict(obj: Any, what: str = "checkpoint") -> dict[str, Tensor]:
    """The module state dict of a Lightning checkpoint object (or of a bare state dict): ``gloria.`` removed,
    ``position_ids`` checked and dropped."""
    if isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping) or not obj or not all(isinstance(v, Tensor) for v in obj.values()):
        raise ValueError(f"{what}: expected a GLoRIA Lightning checkpoint (a dict with a 'state_dict' of tensors)")
    state = {k[len(PREFIX):] if k.startswith(PREFIX) else k: v for k, v in obj.items()}
    ids = state.pop(POSITION_IDS, None)
    if ids is not None and not torch.equal(ids.reshape(-1).long(), torch.arange(ids.numel())):
        raise ValueError(f"{what}: {POSITION_IDS} is not arange({ids.numel()}); this is not a BERT position buffer")
    return state


def read_released(path: str | Path) -> dict[str, Tensor]:
    obj, _ = read_checkpoint_object(path)
    return unwrap_state_dict(obj, str(path))


def _shape(value: Any) -> tuple[int, ...]:
    return tuple(value.shape) if hasattr(value, "shape") else tuple(value)


def infer_config(state_dict: Mapping[str, Any]):
    """The :class:`GloriaConfig` of a (released) state dict, from its keys and shapes (tensors or shape lists)."""
    from baselines.gloria.model import BIO_CLINICAL_BERT, GloriaConfig

    bert_prefix = "text_encoder.model."
    try:
        vocab, hidden = _shape(state_dict[bert_prefix + "embeddings.word_embeddings.weight"])
        positions = _shape(state_dict[bert_prefix + "embeddings.position_embeddings.weight"])[0]
        types_ = _shape(state_dict[bert_prefix + "embeddings.token_type_embeddings.weight"])[0]
        intermediate = _shape(state_dict[bert_prefix + "encoder.layer.0.intermediate.dense.weight"])[0]
        layers = 1 + max(int(k[len(bert_prefix + "encoder.layer."):].split(".")[0]) for k in state_dict
                         if k.startswith(bert_prefix + "encoder.layer."))
        embedding_dim = _shape(state_dict["img_encoder.global_embedder.weight"])[0]
    except (KeyError, ValueError) as exc:
        raise ValueError(f"not a GLoRIA state dict (cannot read its configuration: {exc})") from exc
    bert = dict(BIO_CLINICAL_BERT)
    bert.update(vocab_size=int(vocab), hidden_size=int(hidden), num_hidden_layers=int(layers),
                intermediate_size=int(intermediate), max_position_embeddings=int(positions),
                type_vocab_size=int(types_))
    if int(hidden) != BIO_CLINICAL_BERT["hidden_size"]:
        bert["num_attention_heads"] = max(1, int(hidden) // 64)  # not visible in the weights: BERT's 64 per head
    return GloriaConfig(embedding_dim=int(embedding_dim), bert=bert)


def load_state_dict_into_model(state_dict: Mapping[str, Tensor], config=None, what: str = "GLoRIA state dict"):
    """Build the GLoRIA of ``state_dict``'s configuration and load it strictly (floating values as float32)."""
    from baselines.gloria.model import GLoRIA
    from baselines.state_dict import cast_floats, load_strict

    model = GLoRIA(config or infer_config(state_dict))
    load_strict(model, cast_floats(state_dict), source=what)
    return model.eval()


def load_released(path: str | Path, config=None):
    """(model, how the file was read) of a released GLoRIA ``.ckpt``."""
    obj, how = read_checkpoint_object(path)
    return load_state_dict_into_model(unwrap_state_dict(obj, str(path)), config, str(path)), how


def verify_file(path: str | Path) -> dict[str, Any]:
    """Check a GLoRIA ``.ckpt`` against the module of its configuration without loading the weights (built on the
    meta device). Returns a summary; a mismatch raises :class:`baselines.state_dict.StateDictMismatch`."""
    from baselines.gloria.model import GLoRIA
    from baselines.state_dict import check_keys

    obj, how = read_checkpoint_object(path)
    state_dict = unwrap_state_dict(obj, str(path))
    config = infer_config(state_dict)
    with torch.device("meta"):
        model = GLoRIA(config)
    check_keys(model.state_dict(), state_dict, source=str(path))
    return {"keys": len(state_dict), "read": how, "config": config.to_dict()}


__all__ = ["OpaqueObject", "POSITION_IDS", "PREFIX", "infer_config", "load_released", "load_state_dict_into_model",
           "read_checkpoint_object", "read_released", "unwrap_state_dict", "verify_file"]
