"""GLoRIA's two towers, with the parameter names of the released checkpoint.

Image (``img_encoder``): a torchvision ResNet-50 (``fc`` = identity) behind a bilinear resize to 299 x 299
(``align_corners=True``); layer3 (1024 x 19 x 19) is the local feature, average-pooled layer4 (2048) the global
one; ``global_embedder`` (Linear with bias) and ``local_embedder`` (1x1 conv, no bias) map them to the joint
width. Nothing is L2-normalised.

Text (``text_encoder``): a BERT (``transformers.BertModel`` with its pooler; Bio_ClinicalBERT in the release)
with all hidden states; the last four are stacked, word pieces are merged into words by summing (``[CLS]`` and
``[SEP]`` stay words of their own, everything after ``[SEP]`` becomes zero vectors), word embeddings are the sum
over the four layers, and the sentence embedding is the mean over all ``word_num`` positions (zero padding
included) summed over the layers. There is no text projection, so the joint width is BERT's hidden size.

Text processing (:func:`clean_text`, :func:`process_text`) follows ``GLoRIA.process_text``: sentences split on
numbered points and full stops, ``\\w+`` tokens lower-cased, pieces of one token dropped, non-ASCII removed,
tokenised to ``word_num`` (97) positions; ``cap_lens`` counts the *characters* of the raw string that are not
``[`` (what the published zero-shot slices by).
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

#: Input size the image tower resizes every image to.
RESIZE = 299
#: Token positions of a text (``data.text.word_num``).
WORD_NUM = 97

#: Bio_ClinicalBERT's configuration (the released text tower).
BIO_CLINICAL_BERT = dict(vocab_size=28996, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                         intermediate_size=3072, max_position_embeddings=512, type_vocab_size=2, hidden_act="gelu",
                         layer_norm_eps=1e-12, pad_token_id=0)


@dataclass
class GloriaConfig:
    """The released configuration (``configs/chexpert_pretrain_config.yaml``) by default."""

    backbone: str = "resnet_50"
    embedding_dim: int = 768
    last_n_layers: int = 4
    aggregate_method: str = "sum"
    agg_tokens: bool = True
    text_norm: bool = False
    word_num: int = WORD_NUM
    temp1: float = 4.0
    temp2: float = 5.0
    temp3: float = 10.0
    local_loss_weight: float = 1.0
    global_loss_weight: float = 1.0
    #: the image tower's input resize (299 as published; a reduced random model may use less)
    resize: int = RESIZE
    bert: dict[str, Any] = field(default_factory=lambda: dict(BIO_CLINICAL_BERT))

    def __post_init__(self) -> None:
        if self.backbone != "resnet_50":
            raise ValueError(f"only GLoRIA's resnet_50 is supported (its published code cannot build "
                             f"{self.backbone!r} either), got {self.backbone!r}")
        if self.embedding_dim != int(self.bert["hidden_size"]):
            raise ValueError(f"GLoRIA has no text projection: embedding_dim ({self.embedding_dim}) must equal "
                             f"BERT's hidden size ({self.bert['hidden_size']})")
        if self.aggregate_method != "sum" or not self.agg_tokens or self.text_norm:
            raise ValueError("only the released text settings are implemented (aggregate_method sum, "
                             "agg_tokens true, text.norm false)")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_official(cls, cfg: dict[str, Any], bert: dict[str, Any] | None = None) -> "GloriaConfig":
        """From the published YAML (``model.gloria``, ``model.vision``, ``model.text``, ``data.text``)."""
        model, text = cfg.get("model", {}), cfg.get("model", {}).get("text", {})
        gl = model.get("gloria", {})
        return cls(backbone=model.get("vision", {}).get("model_name", "resnet_50"),
                   embedding_dim=int(text.get("embedding_dim", 768)), last_n_layers=int(text.get("last_n_layers", 4)),
                   aggregate_method=text.get("aggregate_method", "sum"), agg_tokens=bool(text.get("agg_tokens", True)),
                   text_norm=bool(text.get("norm", False)),
                   word_num=int(cfg.get("data", {}).get("text", {}).get("word_num", WORD_NUM)),
                   temp1=float(gl.get("temp1", 4.0)), temp2=float(gl.get("temp2", 5.0)),
                   temp3=float(gl.get("temp3", 10.0)), local_loss_weight=float(gl.get("local_loss_weight", 1.0)),
                   global_loss_weight=float(gl.get("global_loss_weight", 1.0)), bert=dict(bert or BIO_CLINICAL_BERT))


class ImageEncoder(nn.Module):
    """``img_encoder``: ResNet-50 (``model``), ``global_embedder``, ``local_embedder``."""

    def __init__(self, embedding_dim: int, resize: int = RESIZE) -> None:
        super().__init__()
        import torchvision

        self.resize = resize
        self.model = torchvision.models.resnet50(weights=None)
        self.model.fc = nn.Identity()
        self.global_embedder = nn.Linear(2048, embedding_dim)
        self.local_embedder = nn.Conv2d(1024, embedding_dim, kernel_size=1, bias=False)

    def features(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """Images in [-1, 1] (B x 3 x S x S) -> (global B x 2048, local B x 1024 x 19 x 19)."""
        m = self.model
        x = F.interpolate(images, size=(self.resize, self.resize), mode="bilinear", align_corners=True)
        x = m.maxpool(m.relu(m.bn1(m.conv1(x))))
        x = m.layer3(m.layer2(m.layer1(x)))
        local = x
        x = m.layer4(x)
        return torch.flatten(F.adaptive_avg_pool2d(x, 1), 1), local

    def trunk_layers(self) -> nn.Sequential:
        """conv1, bn1, relu, maxpool, layer1, layer2, layer3 (``res_features`` style)."""
        m = self.model
        return nn.Sequential(m.conv1, m.bn1, m.relu, m.maxpool, m.layer1, m.layer2, m.layer3)

    def forward(self, images: Tensor) -> dict[str, Tensor]:
        feat_g, feat_l = self.features(images)
        return {"feat_g": feat_g, "feat_l": feat_l, "emb_g": self.global_embedder(feat_g),
                "emb_l": self.local_embedder(feat_l)}


def aggregate_tokens(hidden: Tensor, ids: Tensor, id_to_token: Callable[[int], str]) -> tuple[Tensor, list[list[str]]]:
    """Merge word pieces: ``hidden`` (B x layers x T x D) -> (B x layers x T x D with one row per word, zeros after
    ``[SEP]``; the word lists, padded with ``[PAD]``)."""
    batch, layers, length, dim = hidden.shape
    out = hidden.new_zeros(batch, layers, length, dim)
    sentences = []
    for b in range(batch):
        rows: list[Tensor] = []
        words: list[str] = []
        bank: list[Tensor] = []
        pieces: list[str] = []
        for t in range(length):
            token = id_to_token(int(ids[b, t]))
            emb = hidden[b, :, t]
            if token == "[SEP]":
                if bank:
                    rows.append(torch.stack(bank).sum(0))
                    words.append("".join(pieces))
                rows.append(emb)
                words.append(token)
                break
            if token.startswith("##"):
                bank.append(emb)
                pieces.append(token[2:])
                continue
            if bank:
                rows.append(torch.stack(bank).sum(0))
                words.append("".join(pieces))
            bank, pieces = [emb], [token]
        if rows:
            out[b, :, : len(rows)] = torch.stack(rows, 1)
        sentences.append(words + ["[PAD]"] * (length - len(words)))
    return out, sentences


class TextEncoder(nn.Module):
    """``text_encoder``: a ``BertModel`` (``model``) and GLoRIA's word / sentence embeddings."""

    def __init__(self, bert: dict[str, Any], last_n_layers: int = 4) -> None:
        super().__init__()
        from transformers import BertConfig, BertModel

        config = BertConfig(**bert, attn_implementation="eager")
        self.model = BertModel(config, add_pooling_layer=True)
        self.last_n_layers = last_n_layers

    def forward(self, ids: Tensor, attention_mask: Tensor, token_type_ids: Tensor,
                id_to_token: Callable[[int], str]) -> dict[str, Any]:
        """-> ``emb_l`` (B x D x T, word embeddings), ``emb_g`` (B x D), ``words`` (per text)."""
        out = self.model(input_ids=ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
                         output_hidden_states=True, return_dict=True)
        hidden = torch.stack(out.hidden_states[-self.last_n_layers:], 1)  # B x layers x T x D
        agg, words = aggregate_tokens(hidden, ids, id_to_token)
        sentence = agg.mean(2).sum(1)  # mean over all T positions, then sum over layers
        word = agg.sum(1)  # B x T x D
        return {"emb_l": word.permute(0, 2, 1), "emb_g": sentence, "words": words}


class GLoRIA(nn.Module):
    """The two towers (``img_encoder``, ``text_encoder``) and the hyper-parameters of the similarities."""

    def __init__(self, config: GloriaConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or GloriaConfig()
        self.img_encoder = ImageEncoder(config.embedding_dim, config.resize)
        self.text_encoder = TextEncoder(config.bert, config.last_n_layers)

    def encode_images(self, images: Tensor) -> dict[str, Tensor]:
        return self.img_encoder(images)

    def encode_texts(self, tokens: dict[str, Tensor], id_to_token: Callable[[int], str]) -> dict[str, Any]:
        return self.text_encoder(tokens["input_ids"], tokens["attention_mask"], tokens["token_type_ids"], id_to_token)


# ------------------------------------------------------------------ text processing
_POINTS = re.compile(r"[0-9]+\.")
_WORD = re.compile(r"\w+")


def clean_text(text: str) -> str:
    """The text ``process_text`` gives the tokenizer."""
    pieces = [s for point in _POINTS.split(text.replace("\n", " ")) for s in point.split(".")]
    sentences = []
    for piece in pieces:
        tokens = _WORD.findall(piece.replace("\ufffd\ufffd", " ").lower())
        if len(tokens) <= 1:
            continue
        kept = [t for t in (tok.encode("ascii", "ignore").decode("ascii") for tok in tokens) if t]
        sentences.append(" ".join(kept))
    return " ".join(sentences)


def cap_len(text: str) -> int:
    """The published ``cap_lens`` entry: characters of the raw string that are not ``[``."""
    return len([c for c in text if not c.startswith("[")])


def process_text(texts: Sequence[str], tokenizer, word_num: int = WORD_NUM) -> dict[str, Any]:
    """Token tensors (N x word_num) of the cleaned texts, and ``cap_lens`` (N)."""
    cleaned = [clean_text(t) for t in texts]
    rows = [tokenizer(c, truncation=True, padding="max_length", max_length=word_num, return_tensors="pt",
                      return_token_type_ids=True, return_attention_mask=True) for c in cleaned]
    out = {k: torch.cat([r[k] for r in rows]) for k in ("input_ids", "attention_mask", "token_type_ids")}
    out["cap_lens"] = torch.tensor([cap_len(t) for t in texts], dtype=torch.long)
    out["cleaned"] = cleaned
    return out


def vocab_lookup(tokenizer) -> Callable[[int], str]:
    """id -> token of a Hugging Face tokenizer (what ``aggregate_tokens`` reads)."""
    vocab = {i: t for t, i in tokenizer.get_vocab().items()}
    return lambda i: vocab.get(i, "[UNK]")


__all__ = ["BIO_CLINICAL_BERT", "GLoRIA", "GloriaConfig", "ImageEncoder", "RESIZE", "TextEncoder", "WORD_NUM",
           "aggregate_tokens", "cap_len", "clean_text", "process_text", "vocab_lookup"]
