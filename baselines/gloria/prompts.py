"""GLoRIA's CheXpert class prompts (``gloria/constants.py: CHEXPERT_CLASS_PROMPTS``) and the published way of
drawing them (``gloria.generate_chexpert_class_prompts``).

Each class has three lists, combined in the order of the dict's keys as ``f"{a} {b} {c}"`` (empty parts leave
their spaces: ``" pulmonary edema "``); the published code then keeps ``n`` of them with ``random.sample``, right
after ``random.seed(6)`` at import. :func:`chexpert_class_prompts` reproduces that draw with its own
``random.Random(seed)``, so the process's global random state is untouched.
"""

from __future__ import annotations

import random

#: The published prompt parts, per CheXpert competition class, in the published key order (Pleural Effusion's
#: keys are severity, location, subtype: its prompts read "small left bilateral pleural effusion").
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
        "subtype": ["cardiac silhouette size is upper limits of normal", "cardiomegaly which is unchanged",
                    "mildly prominent cardiac silhouette",
                    "portable view of the chest demonstrates stable cardiomegaly",
                    "portable view of the chest demonstrates mild cardiomegaly", "persistent severe cardiomegaly",
                    "heart size is borderline enlarged", "cardiomegaly unchanged",
                    "heart size is at the upper limits of normal", "redemonstration of cardiomegaly",
                    "ap erect chest radiograph demonstrates the heart size is the upper limits of normal",
                    "cardiac silhouette size is mildly enlarged",
                    "mildly enlarged cardiac silhouette, likely left ventricular enlargement. other chambers are "
                    "less prominent",
                    "heart size remains at mildly enlarged",
                    "persistent cardiomegaly with prominent upper lobe vessels"],
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

#: Harness labels whose class is one of GLoRIA's CheXpert classes under another name.
LABEL_TO_CHEXPERT = {"Effusion": "Pleural Effusion"}

#: The seed the published module sets at import, before the README draws its prompts.
PUBLISHED_SEED = 6


def all_class_prompts(name: str) -> list[str]:
    """Every combination of a class's parts, in the published loop order."""
    first, second, third = CHEXPERT_CLASS_PROMPTS[name].values()
    return [f"{a} {b} {c}" for a in first for b in second for c in third]


def chexpert_class_prompts(n: int = 5, seed: int = PUBLISHED_SEED) -> dict[str, list[str]]:
    """``generate_chexpert_class_prompts(n)`` as the README calls it right after import (``random.seed(6)``)."""
    rng = random.Random(seed)
    return {name: rng.sample(all_class_prompts(name), n) for name in CHEXPERT_CLASS_PROMPTS}


__all__ = ["CHEXPERT_CLASS_PROMPTS", "LABEL_TO_CHEXPERT", "PUBLISHED_SEED", "all_class_prompts",
           "chexpert_class_prompts"]
