"""The tiny text encoder reads its vocabulary (transformers 5 ignored ``vocab_file=`` and made every word [UNK])."""

from __future__ import annotations

import torch

from medslip.books import pathology_texts
from medslip.text import TINY_RANDOM, _TINY_VOCAB, load_text_encoder, tiny_text_encoder


def test_tiny_tokenizer_tokenizes_real_words() -> None:
    encoder = tiny_text_encoder()
    ids = encoder.tokenizer(["pleural effusion", "pneumothorax"])["input_ids"]
    unk = _TINY_VOCAB.index("[UNK]")
    assert all(unk not in row for row in ids), ids  # issue 16: [2, 1, 1, 3] and [2, 1, 3] before
    assert ids[0] != ids[1] and len(ids[0]) > 4
    assert len(encoder.tokenizer) == len(_TINY_VOCAB)


def test_distinct_prompts_get_distinct_ids_and_embeddings() -> None:
    encoder = load_text_encoder(f"{TINY_RANDOM}(width=32,layers=2,heads=2,seed=0)", max_length=64)
    prompts = ["There is pleural effusion.", "There is no pleural effusion.", "There is pneumothorax.",
               "There is edema.", "Findings consistent with edema."]
    ids = encoder.tokenizer(prompts, padding="max_length", max_length=64)["input_ids"]
    assert len({tuple(row) for row in ids}) == len(prompts)
    emb = encoder.encode(prompts)
    assert emb.shape == (len(prompts), 32)
    distance = torch.cdist(emb, emb)
    off_diagonal = distance[~torch.eye(len(prompts), dtype=torch.bool)]
    assert off_diagonal.min() > 1e-3  # equal-length prompts too (pneumothorax / pleural effusion differ)
    # the book's descriptions are told apart as well: a random BERT at the usual 0.02 initialisation gave the
    # same [CLS] vector for every text (cosine 0.999998), so its queries were near-identical
    book = encoder.encode(pathology_texts())
    cos = torch.nn.functional.cosine_similarity(book[:, None], book[None], dim=-1)
    assert cos[~torch.eye(len(book), dtype=torch.bool)].mean() < 0.9
