"""MedCLIP's zero-shot rule (``PromptClassifier``) and the prompt-set variants offered around it.

Published rule (``MedCLIPPromptClassifier.forward``): for each class, in order, the class's prompts are
tokenised as **one batch** (``padding=True``: to the longest prompt of that class; ``truncation=True``,
max length 77), the model gives B x n logits ``exp(clamp(logit_scale)) * cos(img, prompt)``, and the class
score is their **mean** over prompts (``ensemble=True``, the README) or their **max** (``ensemble=False``).
The scores are stacked to B x C; no softmax. The published evaluator then takes the argmax (multiclass) or
a sigmoid per column (multilabel / binary).

Which prompts: MedCLIP's own tables (CheXpert's five classes; RSNA pneumonia; COVID), the README draws 10 per class with :func:`random.sample` and no seed. Rules (``RULES``):

- ``ensemble-random`` (alias ``published``) / ``max-random``: 10 prompts per class drawn from the global
  Python RNG, unseeded, exactly as published (not reproducible; the drawn prompts are recorded);
- ``ensemble-seed:S`` / ``max-seed:S``: the same draw after ``random.seed(S)`` (reproducible);
- ``ensemble-all`` / ``max-all``: every candidate prompt of the class (deterministic). The mean over a
  uniformly drawn subset estimates the mean over all candidates, so ``ensemble-all`` is the expectation of the
  published estimator (apart from the padding length, which is that of the longest of all candidates).

Every rule scores each image on its own (no dependence on the other images of the batch).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import torch
from torch import Tensor

from baselines.medclip.prompts import PROMPT_TABLES, PUBLISHED_N_PROMPTS, candidate_prompts, sample_prompts

MAX_LENGTH = 77
DEFAULT_RULE = "ensemble-all"
PUBLISHED_RULE = "ensemble-random"
RULES = ("ensemble-all", "max-all", "ensemble-random", "max-random", "ensemble-seed:S", "max-seed:S")
ALIASES = {"published": PUBLISHED_RULE, "published-max": "max-random"}


@dataclass(frozen=True)
class ZeroShotRule:
    reduce: str  # "ensemble" (mean over prompts) or "max"
    prompts: str  # "all", "random" or "seed"
    seed: int | None = None
    n: int = PUBLISHED_N_PROMPTS

    @property
    def name(self) -> str:
        return f"{self.reduce}-{self.prompts}" + (f":{self.seed}" if self.prompts == "seed" else "")

    @property
    def deterministic(self) -> bool:
        return self.prompts != "random"

    def describe(self) -> str:
        reduce = "mean" if self.reduce == "ensemble" else "max"
        which = {"all": "all candidate prompts of the class",
                 "random": f"{self.n} prompts per class from random.sample, unseeded (as published)",
                 "seed": f"{self.n} prompts per class from random.sample after random.seed({self.seed})"}[self.prompts]
        return (f"{self.name}: per class, {reduce} over prompts of exp(clamp(logit_scale, 0, 4.6052)) * cos(img, "
                f"prompt), prompts tokenised per class with padding to the longest; {which}")

    def draw(self, classes: Sequence[str]) -> dict[str, list[str]]:
        """The prompts of each MedCLIP class under this rule (classes of one published prompt table, drawn in
        one call as its published function does)."""
        if self.prompts == "all":
            return {c: candidate_prompts(c) for c in classes}
        rng = random.Random(self.seed) if self.prompts == "seed" else None
        return sample_prompts(self.n, rng, classes)

    def draw_tables(self) -> dict[str, list[str]]:
        """Every published table drawn under this rule, each as by its own published function (with
        ``seed:S``, each after ``random.seed(S)``)."""
        out: dict[str, list[str]] = {}
        for table in PROMPT_TABLES.values():
            out.update(self.draw(list(table)))
        return out


def parse_rule(text: str | None, n: int | None = None) -> ZeroShotRule:
    """``ensemble-all`` | ``max-all`` | ``ensemble-random`` (``published``) | ``max-random`` |
    ``ensemble-seed:S`` | ``max-seed:S``."""
    raw = (text or DEFAULT_RULE).strip()
    name = ALIASES.get(raw, raw)
    reduce, _, rest = name.partition("-")
    prompts, _, seed = rest.partition(":")
    ok = reduce in ("ensemble", "max") and (prompts in ("all", "random") and not seed or
                                            prompts == "seed" and seed.lstrip("-").isdigit())
    if not ok:
        raise ValueError(f"MedCLIP zero-shot rule {raw!r}: expected one of {', '.join(RULES)} "
                         f"(or {', '.join(ALIASES)})")
    return ZeroShotRule(reduce, prompts, int(seed) if prompts == "seed" else None, n or PUBLISHED_N_PROMPTS)


def tokenize_class(tokenizer, prompts: Sequence[str], device: torch.device | None = None) -> dict[str, Tensor]:
    """One class's prompts as one batch, as published: padding to the longest, truncation at 77."""
    enc = tokenizer(list(prompts), truncation=True, padding=True, max_length=MAX_LENGTH, return_tensors="pt")
    return {k: enc[k].to(device) if device is not None else enc[k] for k in ("input_ids", "attention_mask")}


def class_scores(logits: Tensor, reduce: str) -> Tensor:
    """B x n logits of one class -> B scores (mean or max over prompts)."""
    return logits.mean(1) if reduce == "ensemble" else logits.max(1)[0]


@torch.no_grad()
def prompt_classifier(model, pixel_values: Tensor, prompt_inputs: Mapping[str, Mapping[str, Tensor]],
                      ensemble: bool = True) -> Tensor:
    """``PromptClassifier(model, ensemble)(pixel_values, prompt_inputs)['logits']``: B x C, classes in the
    order of ``prompt_inputs``; each value holds ``input_ids`` and ``attention_mask`` (other keys, such as
    ``token_type_ids``, are ignored, as ``MedCLIPModel.forward`` swallows them)."""
    img = model.encode_image(pixel_values)
    scores = []
    for inputs in prompt_inputs.values():
        txt = model.encode_text(inputs["input_ids"], inputs.get("attention_mask"))
        scores.append(class_scores(model.compute_logits(img, txt), "ensemble" if ensemble else "max"))
    return torch.stack(scores, 1)


class PromptZeroShot:
    """Zero-shot scores of one model under one rule, with the text embeddings of each prompt set cached.

    ``prompt_sets`` maps a class key to its prompt strings; each set is tokenised as one batch.
    """

    def __init__(self, model, tokenizer, rule: ZeroShotRule, device: Callable[[], torch.device]) -> None:
        self.model, self.tokenizer, self.rule, self._device = model, tokenizer, rule, device
        self._cache: dict[tuple[str, ...], Tensor] = {}

    @torch.no_grad()
    def text_embeddings(self, prompts: Sequence[str]) -> Tensor:
        key = tuple(prompts)
        if key not in self._cache:
            inputs = tokenize_class(self.tokenizer, prompts, self._device())
            self._cache[key] = self.model.encode_text(inputs["input_ids"], inputs["attention_mask"])
        return self._cache[key]

    @torch.no_grad()
    def logits(self, img_embeds: Tensor, prompt_sets: Sequence[Sequence[str]]) -> Tensor:
        """B x C class scores (the published logits, before any sigmoid)."""
        scores = [class_scores(self.model.compute_logits(img_embeds, self.text_embeddings(p)), self.rule.reduce)
                  for p in prompt_sets]
        return torch.stack(scores, 1)


__all__ = ["ALIASES", "DEFAULT_RULE", "MAX_LENGTH", "PUBLISHED_RULE", "RULES", "PromptZeroShot", "ZeroShotRule",
           "class_scores", "parse_rule", "prompt_classifier", "tokenize_class"]
