"""MedKLIP's query book: the entity descriptions, encoded by the text encoder's [CLS] token.

The published code reads the description JSON (``observation explanation.json``: entity -> description, in
entity order), tokenises every value to 64 tokens (padding to the maximum length) and keeps
``last_hidden_state[:, 0]`` of Bio_ClinicalBERT. The released checkpoint does not hold the result, so the file
is a user input, and the book is cached under a fingerprint of the file's content and of the encoder.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Sequence

from safetensors.torch import load_file, save_file
from torch import Tensor

from medslip.atomic import atomic_path
from medslip.books import load_pathology_book
from medslip.text import TextEncoder, texts_fingerprint

#: Token length of the published book encoding.
MAX_LENGTH = 64


def read_descriptions(path: str | Path, expected: int = 75) -> list[str]:
    """The descriptions of an entity description file (a JSON object; its values, in order)."""
    return load_pathology_book(path, expected=expected)


def book_fingerprint(encoder_identity: str, texts: Sequence[str], max_length: int = MAX_LENGTH) -> str:
    """sha256 of (encoder, token length, description texts): the cache key of a book."""
    return texts_fingerprint(f"medklip-book\0{encoder_identity}", max_length, list(texts))


def file_fingerprint(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def encode_book(encoder: TextEncoder, texts: Sequence[str], cache_dir: str | Path | None = None,
                max_length: int = MAX_LENGTH) -> tuple[Tensor, str]:
    """(book N x width, fingerprint): the [CLS] embeddings of ``texts``, from the cache when present."""
    key = book_fingerprint(encoder.identity, texts, max_length)
    cached = Path(cache_dir) / f"medklip-book-{key[:32]}.safetensors" if cache_dir is not None else None
    if cached is not None and cached.is_file():
        return load_file(str(cached))["book"], key
    book = encoder.encode(list(texts), max_length=max_length).contiguous()
    if cached is not None:
        with atomic_path(cached) as tmp:
            save_file({"book": book}, str(tmp), metadata={"encoder": encoder.identity, "fingerprint": key})
    return book, key


__all__ = ["MAX_LENGTH", "book_fingerprint", "encode_book", "file_fingerprint", "read_descriptions"]
