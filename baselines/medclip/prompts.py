"""MedCLIP's zero-shot prompt set (data) and its prompt sampling.

The published code builds the candidate prompts of a class from three word lists of
``CHEXPERT_CLASS_PROMPTS`` (``f"{a} {b} {c}"`` over every combination, in the order of the class's
own keys: severity, subtype, location; for "Pleural Effusion" severity, location, subtype), then draws
``n`` of them with :func:`random.sample` from the global Python RNG, class by class in dict order. Its
README uses ``n=10`` and no seed, so the official prompt set cannot be reproduced; with a seed it can:
``random.seed(s)`` followed by the published call equals :func:`sample_prompts` with
``random.Random(s)``. The RSNA pneumonia and COVID tables are drawn the same way by their own published
functions. The strings are kept exactly as published, typos ("apperance of",
"presistent", "uppper"), empty words (hence leading / trailing / double spaces) and the repeated
"bilateral pleural effusion" included.
"""

from __future__ import annotations

import itertools
import random
from typing import Sequence

#: The CheXpert competition classes in the published dict order (the order of the zero-shot logits).
CHEXPERT_COMPETITION_TASKS = ("Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Pleural Effusion")

#: Word lists per class, as published (``medclip/constants.py``, itself drawn from GLoRIA).
CHEXPERT_CLASS_PROMPTS: dict[str, dict[str, list[str]]] = {
    "Atelectasis": {
        "severity": ["", "mild", "minimal"],
        "subtype": ["subsegmental atelectasis", "linear atelectasis", "trace atelectasis", "bibasilar atelectasis",
                    "retrocardiac atelectasis", "bandlike atelectasis", "residual atelectasis"],
        "location": ["at the mid lung zone", "at the upper lung zone", "at the right lung zone",
                     "at the left lung zone", "at the lung bases", "at the right lung base", "at the left lung base",
                     "at the bilateral lung bases", "at the left lower lobe", "at the right lower lobe"],
    },
    "Cardiomegaly": {
        "severity": [""],
        "subtype": [
            "cardiac silhouette size is upper limits of normal",
            "cardiomegaly which is unchanged",
            "mildly prominent cardiac silhouette",
            "portable view of the chest demonstrates stable cardiomegaly",
            "portable view of the chest demonstrates mild cardiomegaly",
            "persistent severe cardiomegaly",
            "heart size is borderline enlarged",
            "cardiomegaly unchanged",
            "heart size is at the upper limits of normal",
            "redemonstration of cardiomegaly",
            "ap erect chest radiograph demonstrates the heart size is the upper limits of normal",
            "cardiac silhouette size is mildly enlarged",
            "mildly enlarged cardiac silhouette, likely left ventricular enlargement. other chambers are less "
            "prominent",
            "heart size remains at mildly enlarged",
            "persistent cardiomegaly with prominent upper lobe vessels",
        ],
        "location": [""],
    },
    "Consolidation": {
        "severity": ["", "increased", "improved", "apperance of"],
        "subtype": ["bilateral consolidation", "reticular consolidation", "retrocardiac consolidation",
                    "patchy consolidation", "airspace consolidation", "partial consolidation"],
        "location": ["at the lower lung zone", "at the upper lung zone", "at the left lower lobe",
                     "at the right lower lobe", "at the left upper lobe", "at the right uppper lobe",
                     "at the right lung base", "at the left lung base"],
    },
    "Edema": {
        "severity": ["", "mild", "improvement in", "presistent", "moderate", "decreased"],
        "subtype": ["pulmonary edema", "trace interstitial edema", "pulmonary interstitial edema"],
        "location": [""],
    },
    "Pleural Effusion": {
        "severity": ["", "small", "stable", "large", "decreased", "increased"],
        "location": ["left", "right", "tiny"],
        "subtype": ["bilateral pleural effusion", "subpulmonic pleural effusion", "bilateral pleural effusion"],
    },
}

#: The RSNA pneumonia and COVID prompt tables (``RSNA_CLASS_PROMPTS`` / ``COVID_CLASS_PROMPTS``, drawn by the
#: published ``generate_rsna_class_prompts`` / ``generate_covid_class_prompts`` with the same rule; the COVID
#: table has four word lists). Unlike the CheXpert table these are not checked by a fixture.
RSNA_CLASS_PROMPTS: dict[str, dict[str, list[str]]] = {
    "Pneumonia": {
        "adjective": ["round", "early", "focal", "multifocal", "small", ""],
        "subtype": ["bacterial", "viral", "mycoplasma", ""],
        "location": ["at the mid lung zone", "at the upper lung zone", "at the right lung zone",
                     "at the left lung zone", "at the lung bases", "at the right lung base", "at the left lung base",
                     "at the bilateral lung bases", "at the left lower lobe", "at the right lower lobe",
                     "at the left middle lobe", "at the right middle lobe", ""],
    },
}
COVID_CLASS_PROMPTS: dict[str, dict[str, list[str]]] = {
    "COVID": {
        "adjective": ["patchy", "confluent"],
        "description": ["ground glass"],
        "subtype": ["opacity", "consolidation"],
        "location": ["in peripheral", "in mid", "in lower"],
    },
}
#: Every published prompt table, in the order the adapter draws them (each by its own published function).
PROMPT_TABLES: dict[str, dict[str, dict[str, list[str]]]] = {
    "chexpert": CHEXPERT_CLASS_PROMPTS, "rsna": RSNA_CLASS_PROMPTS, "covid": COVID_CLASS_PROMPTS}

#: Prompts per class in the published README's zero-shot example.
PUBLISHED_N_PROMPTS = 10

#: Harness / dataset label -> MedCLIP class whose prompt set describes it.
LABEL_ALIASES = {"Effusion": "Pleural Effusion", "Pleural_Effusion": "Pleural Effusion", "COVID-19": "COVID"}


def table_of(class_name: str) -> str:
    """The name of the prompt table holding a MedCLIP class."""
    for name, table in PROMPT_TABLES.items():
        if class_name in table:
            return name
    raise KeyError(f"no MedCLIP prompt table has the class {class_name!r}")


def candidate_prompts(class_name: str) -> list[str]:
    """Every prompt of a class: the word lists combined in the class's own key order, space-joined."""
    lists = list(PROMPT_TABLES[table_of(class_name)][class_name].values())
    return [" ".join(words) for words in itertools.product(*lists)]


def sample_prompts(n: int | None = PUBLISHED_N_PROMPTS, rng: random.Random | None = None,
                   classes: Sequence[str] = CHEXPERT_COMPETITION_TASKS) -> dict[str, list[str]]:
    """The published ``generate_chexpert_class_prompts(n)`` (or the RSNA / COVID one, given their classes): ``n``
    prompts per class drawn with
    ``rng.sample`` (class by class, in order); all candidates when ``n`` is None or not smaller than their
    number. ``rng=None`` draws from the global :mod:`random` state, as the published code does."""
    draw = rng if rng is not None else random
    out: dict[str, list[str]] = {}
    for name in classes:
        cands = candidate_prompts(name)
        out[name] = draw.sample(cands, n) if n is not None and n < len(cands) else cands
    return out


def medclip_class(label: str) -> str | None:
    """The MedCLIP prompt class of a dataset label, or None when MedCLIP has no prompts for it."""
    name = LABEL_ALIASES.get(label, label)
    return name if any(name in table for table in PROMPT_TABLES.values()) else None


__all__ = ["CHEXPERT_CLASS_PROMPTS", "CHEXPERT_COMPETITION_TASKS", "COVID_CLASS_PROMPTS", "LABEL_ALIASES",
           "PROMPT_TABLES", "PUBLISHED_N_PROMPTS", "RSNA_CLASS_PROMPTS", "candidate_prompts", "medclip_class",
           "sample_prompts", "table_of"]
