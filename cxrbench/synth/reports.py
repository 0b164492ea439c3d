"""Radiology reports in the MIMIC-CXR layout, with their exact ground truth.

Each sentence is built from parts whose meaning is known, so the generator knows every *mention*
``(observation, anatomy, status, sentence)`` it writes; the study's 51 x 75 matrix is computed from the mentions
with the published semantics (:func:`mentions_to_matrix`).

The phrasing contract (what a rule-based extractor can rely on):

* every sentence carries **one observation** (with zero or more anatomies, all of which it applies to) or
  **several negated observations and no anatomy** ("No pneumothorax or focal consolidation.");
* one status per sentence: present, absent (``no``, ``there is no``, ``no evidence of``) or uncertain
  (``possible``, ``cannot be ruled out``, ``questionable``); uncertain mentions leave the matrix at -1;
* locations use fixed words: ``right|left upper|mid|lower lung``, ``right|left apex``,
  ``right|left upper|lower lobe``, ``right middle lobe``, ``lung bases`` / ``bibasilar`` (lung_bases),
  ``lung apices`` (lung_apices), ``right|left pleural`` (right_/left_pleural), ``bilateral pleural`` and
  ``bilateral`` + sided default (both sides), ``both lower lungs`` (left_ and right_lower_lung), ``pleural``
  (pleural_unspec), ``lungs`` (left_ and right_lung_unspec), ``heart size`` / ``cardiac silhouette`` / ``heart``
  (heart_size), ``mediastinal contours``, ``hilar contours``, ``costophrenic angles``, ``osseous structures``
  (other), ``left chest wall`` (other), ``lung volumes``, ``pulmonary``, ``interstitial``, ``retrocardiac``,
  ``trachea``, ``stomach``, ``superior vena cava`` / ``SVC``, ``right atrium``, ``right ventricle``;
  an observation with no location word has the anatomy ``unspecified`` except ``cardiomegaly`` (heart_size)
  and a sided pneumothorax (the sided pleural anatomy).
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, field

import numpy as np

from medslip.vocab import ANATOMY_INDEX, NUM_ANATOMIES, NUM_OBSERVATIONS, OBSERVATION_INDEX

from .findings import LOCATIONS, Finding

__all__ = ["Mention", "Report", "mentions_to_matrix", "write_report", "chexpert_labels", "CHEXPERT_COLUMNS",
           "FINDING_OBSERVATION"]

PRESENT, ABSENT, UNCERTAIN = "present", "absent", "uncertain"

#: The observation (MeDSLIP vocabulary) each finding is reported as.
FINDING_OBSERVATION: dict[str, str] = {
    "atelectasis": "atelectasis", "cardiomegaly": "cardiomegaly", "consolidation": "consolidation",
    "edema": "edema", "effusion": "effusion", "emphysema": "emphysema", "fibrosis": "tail_abnorm_obs",
    "hernia": "hernia", "infiltration": "infiltrate", "mass": "mass", "nodule": "nodule",
    "pleural_thickening": "thicken", "pneumonia": "pneumonia", "pneumothorax": "pneumothorax",
    "covid19": "opacity", "et_tube": "tube", "ng_tube": "tube", "central_line": "catheter", "pacemaker": "pacemaker",
}


@dataclass(frozen=True)
class Mention:
    """One statement of a report: ``status`` is ``present``, ``absent`` or ``uncertain``."""

    observation: str
    anatomy: str
    status: str
    sentence: str


@dataclass
class Report:
    """Report text (MIMIC layout) and what it says."""

    text: str
    mentions: list[Mention] = field(default_factory=list)

    def matrix(self) -> np.ndarray:
        """The ``(51, 75)`` int8 matrix in {-1, 0, 1} (anatomy x observation) of this report."""
        return mentions_to_matrix(self.mentions)


def mentions_to_matrix(mentions: list[Mention]) -> np.ndarray:
    """Published semantics: start at -1; present sets 1; absent sets max(cell, 0); uncertain changes nothing.

    Returns an int8 array of shape ``(51, 75)``.
    """
    m = np.full((NUM_ANATOMIES, NUM_OBSERVATIONS), -1, dtype=np.int8)
    for x in mentions:
        a, o = ANATOMY_INDEX[x.anatomy], OBSERVATION_INDEX[x.observation]
        if x.status == PRESENT:
            m[a, o] = 1
        elif x.status == ABSENT:
            m[a, o] = max(m[a, o], 0)
    return m


# ----------------------------------------------------------------------------------------------------------
# Location words


def _adj(key: str) -> str:
    """Location words used before the noun ("right lower lobe consolidation")."""
    special = {"lung_bases": "bibasilar", "lung_apices": "biapical", "bilateral_pleural": "bilateral pleural",
               "bilateral_lower_lung": "bilateral lower lung", "retrocardiac": "retrocardiac",
               "pulmonary": "pulmonary", "interstitium": "interstitial"}
    if key in special:
        return special[key]
    return _noun(key)


def _noun(key: str) -> str:
    """Location words as a noun phrase ("the right lower lobe")."""
    special = {"lung_bases": "lung bases", "lung_apices": "lung apices", "bilateral_lower_lung": "both lower lungs",
               "retrocardiac": "retrocardiac region", "right_apical_lung": "right apex",
               "left_apical_lung": "left apex"}
    if key in special:
        return special[key]
    parts = key.split("_")
    if parts[-1] == "lobe":  # upper_right_lobe -> right upper lobe
        return f"{parts[1]} {parts[0]} lobe"
    if parts[-1] == "lung":  # right_lower_lung -> right lower lung
        return " ".join(parts)
    if parts[-1] == "pleural":
        return f"{parts[0]} pleural space"
    return " ".join(parts)


def _prep(keys: list[str]) -> str:
    """``in the X`` / ``at the X`` for one or several locations joined by ``and``."""
    nouns = [_noun(k) for k in keys]
    prep = "at" if any(("bases" in n or "apices" in n or "apex" in n) for n in nouns) else "in"
    return f"{prep} the " + " and the ".join(nouns)


def _cap(s: str) -> str:
    s = " ".join(s.split())
    return s[:1].upper() + s[1:]


def _pick(rng: np.random.Generator, options: list[str]) -> str:
    return options[int(rng.integers(0, len(options)))]


# ----------------------------------------------------------------------------------------------------------
# Sentences about findings


def _present_sentences(rng: np.random.Generator, f: Finding) -> list[tuple[str, list[Mention]]]:
    """Sentences stating ``f`` as present, each with its mentions (status left as present)."""
    name, sev = f.name, f.severity_word
    locs = [les.location for les in f.lesions]
    obs = FINDING_OBSERVATION[name]
    anats = list(f.anatomies)
    adv = {"mild": "mildly", "moderate": "moderately", "severe": "severely"}.get(sev, "mildly")
    if name == "cardiomegaly":
        s = _pick(rng, [f"{sev} cardiomegaly.", f"There is {sev} cardiomegaly.", f"The heart is {adv} enlarged.",
                        f"{sev} cardiomegaly with increased heart size."])
        return [(s, _m(obs, ["heart_size"]))]
    if name == "effusion":
        k = locs[0]
        if len(anats) == 2:
            s = _pick(rng, [f"{sev} bilateral pleural effusions.", f"There are {sev} bilateral pleural effusions."])
        else:
            side = "right" if k.startswith("right") else "left"
            s = _pick(rng, [f"{sev} {side} pleural effusion.", f"There is a {sev} {side} pleural effusion.",
                            f"{sev} effusion in the {side} pleural space."])
        return [(s, _m(obs, anats))]
    if name == "pneumothorax":
        if len(anats) == 2:
            s = f"{sev} bilateral pneumothoraces."
        elif "apical" in locs[0]:
            side = locs[0].split("_")[0]
            s = _pick(rng, [f"{sev} {side} apical pneumothorax.", f"There is a {sev} pneumothorax at the {side} apex."])
        else:
            side = locs[0].split("_")[0]
            s = _pick(rng, [f"{sev} {side} pneumothorax.", f"There is a {sev} {side} pneumothorax.",
                            f"{sev} pneumothorax in the {side} pleural space."])
        return [(s, _m(obs, anats))]
    if name == "pleural_thickening":
        side = locs[0].split("_")[0]
        s = _pick(rng, [f"{sev} {side} pleural thickening.", f"There is {sev} {side} pleural thickening."])
        return [(s, _m(obs, anats))]
    if name == "edema":
        word = _adj(locs[0])
        s = _pick(rng, [f"{sev} {word} edema.", f"There is {sev} {word} edema."])
        return [(s, _m(obs, anats))]
    if name == "emphysema":
        if locs[0] == "pulmonary":
            s = _pick(rng, [f"{sev} pulmonary emphysema.", f"There is {sev} pulmonary emphysema."])
        else:
            s = _pick(rng, [f"{sev} emphysema at the lung apices.", f"There is {sev} emphysema at the lung apices."])
        return [(s, _m(obs, anats))]
    if name == "fibrosis":
        s = _pick(rng, [f"{sev} fibrosis {_prep(locs)}.", f"{sev} {_adj(locs[0])} fibrosis."])
        return [(s, _m(obs, anats))]
    if name == "hernia":
        s = _pick(rng, [f"{sev} hiatal hernia in the retrocardiac region.", f"A {sev} retrocardiac hiatal hernia."])
        return [(s, _m(obs, anats))]
    if name in ("nodule", "mass"):
        size = f"{int(6 + 20 * f.severity)} mm" if name == "nodule" else f"{int(3 + 5 * f.severity)} cm"
        s = _pick(rng, [f"A {size} {name} {_prep(locs)}.", f"{_adj(locs[0])} {name} measuring {size}.",
                        f"There is a {size} {_adj(locs[0])} {name}."])
        return [(s, _m(obs, anats))]
    if name in ("consolidation", "pneumonia", "atelectasis", "infiltration"):
        noun = {"infiltration": "infiltrate", "consolidation": "consolidation", "pneumonia": "pneumonia",
                "atelectasis": "atelectasis"}[name]
        if name == "infiltration" and len(locs) > 1:
            noun = "infiltrates"
        word = "" if name == "pneumonia" else sev
        if name == "pneumonia" and len(locs) > 1:
            s = _pick(rng, [f"Multifocal pneumonia {_prep(locs)}.", f"There is pneumonia {_prep(locs)}."])
        elif len(locs) > 1:
            s = f"{word} {noun} {_prep(locs)}."
        else:
            s = _pick(rng, [f"{word} {noun} {_prep(locs)}.", f"{word} {_adj(locs[0])} {noun}.",
                            f"There is {word} {noun} {_prep(locs)}."])
        return [(s, _m(obs, anats))]
    if name == "covid19":
        if locs[0] == "lung_bases":
            s = _pick(rng, ["Patchy peripheral opacities at the lung bases.", "Bibasilar peripheral opacities."])
        else:
            s = _pick(rng, ["Patchy peripheral opacities in both lower lungs.", "Bilateral lower lung opacities."])
        return [(s, _m(obs, anats))]
    if name == "et_tube":
        s = _pick(rng, ["An endotracheal tube terminates in the trachea.", "Endotracheal tube ends in the trachea."])
        return [(s, _m(obs, anats))]
    if name == "ng_tube":
        s = _pick(rng, ["A nasogastric tube extends into the stomach.", "Nasogastric tube terminates in the stomach."])
        return [(s, _m(obs, anats))]
    if name == "central_line":
        s = _pick(rng, ["A central venous catheter terminates in the superior vena cava.",
                        "Central venous catheter ends in the SVC."])
        return [(s, _m(obs, anats))]
    if name == "pacemaker":
        s = "A pacemaker overlies the left chest wall."
        s2 = _pick(rng, ["Leads terminate in the right atrium and right ventricle.",
                         "Transvenous leads terminate in the right atrium and right ventricle."])
        return [(s, _m(obs, ["other"])), (s2, _m("lead", ["right_atrium", "right_ventricle"]))]
    raise KeyError(name)


def _hedged_sentence(rng: np.random.Generator, f: Finding) -> tuple[str, list[Mention]] | None:
    """An uncertain statement of a present finding, or None if the finding is never hedged."""
    if f.name not in ("effusion", "nodule", "consolidation", "pneumonia", "atelectasis", "infiltration",
                      "pneumothorax") or len(f.lesions) > 1 or len(f.anatomies) > 1:
        return None
    obs = FINDING_OBSERVATION[f.name]
    loc = f.lesions[0].location
    noun = {"infiltration": "infiltrate", "pneumothorax": "pneumothorax", "effusion": "pleural effusion"}.get(
        f.name, f.name)
    if f.name == "effusion":
        side = loc.split("_")[0]
        s = _pick(rng, [f"Possible small {side} pleural effusion.",
                        f"A small {side} pleural effusion cannot be ruled out."])
    elif f.name == "pneumothorax":
        side = loc.split("_")[0]
        s = f"Questionable {side} apical pneumothorax." if "apical" in loc else f"Possible small {side} pneumothorax."
    else:
        s = _pick(rng, [f"Possible {noun} {_prep([loc])}.", f"{_adj(loc)} {noun} cannot be ruled out.",
                        f"Questionable {_adj(loc)} {noun}."])
    return s, _m(obs, list(f.anatomies))


def _m(obs: str, anatomies: list[str]) -> list[Mention]:
    return [Mention(obs, a, PRESENT, "") for a in (anatomies or ["unspecified"])]


def _stamp(sentence: str, mentions: list[Mention], status: str) -> tuple[str, list[Mention]]:
    s = _cap(sentence)
    return s, [Mention(m.observation, m.anatomy, status, s) for m in mentions]


# ----------------------------------------------------------------------------------------------------------
# Whole report

_NEGATIONS: dict[str, list[tuple[str, str]]] = {
    "pneumothorax": [("No pneumothorax.", "unspecified"), ("There is no pneumothorax.", "unspecified"),
                     ("No evidence of pneumothorax.", "unspecified")],
    "effusion": [("No pleural effusion.", "pleural_unspec"), ("There is no pleural effusion.", "pleural_unspec")],
    "consolidation": [("No focal consolidation.", "unspecified"), ("There is no consolidation.", "unspecified")],
    "edema": [("No evidence of pulmonary edema.", "pulmonary"), ("There is no edema.", "unspecified")],
    "pneumonia": [("No evidence of pneumonia.", "unspecified")],
    "nodule": [("No suspicious nodules.", "unspecified")],
}
_LUNG_FINDINGS = {"atelectasis", "consolidation", "edema", "emphysema", "fibrosis", "infiltration", "mass", "nodule",
                  "pneumonia", "pneumothorax", "covid19", "effusion", "pleural_thickening"}


def _lung_sides(findings: list[Finding]) -> set[str]:
    sides: set[str] = set()
    for f in findings:
        if f.name not in _LUNG_FINDINGS:
            continue
        for les in f.lesions:
            side = LOCATIONS[les.location].side
            sides |= {"right", "left"} if side == 2 else {("right", "left")[side]}
    return sides


def write_report(rng: np.random.Generator, findings: list[Finding], view: str = "PA", sex: str = "M",
                 hedge_rate: float = 0.08, omit_device_rate: float = 0.15) -> Report:
    """Write the report of one study whose image shows ``findings``; returns text and mentions."""
    pathologies = [f for f in findings if not f.spec.device]
    devices = [f for f in findings if f.spec.device]
    names = {f.name for f in findings}
    body: list[tuple[str, list[Mention]]] = []
    impression: list[tuple[str, list[Mention]]] = []
    # devices first, as radiologists do
    for f in devices:
        if rng.random() < omit_device_rate:
            continue
        for s, ms in _present_sentences(rng, f):
            body.append(_stamp(s, ms, PRESENT))
    hedged: set[str] = set()
    for f in pathologies:
        h = _hedged_sentence(rng, f) if rng.random() < hedge_rate else None
        if h is not None:
            hedged.add(f.name)
            body.append(_stamp(h[0], h[1], UNCERTAIN))
        else:
            for s, ms in _present_sentences(rng, f):
                body.append(_stamp(s, ms, PRESENT))
    # normal statements
    if "cardiomegaly" not in names:
        s = _pick(rng, ["Heart size is normal.", "The heart size is normal.", "The cardiac silhouette is normal."])
        body.append(_stamp(s, _m("normal", ["heart_size"]), PRESENT))
    if rng.random() < 0.6:
        s, obs = (("Mediastinal contours are normal.", "normal") if rng.random() < 0.5
                  else ("Mediastinal contours are unremarkable.", "unremarkable"))
        body.append(_stamp(s, _m(obs, ["mediastinal"]), PRESENT))
    if rng.random() < 0.3:
        body.append(_stamp("Hilar contours are unremarkable.", _m("unremarkable", ["hilar_unspec"]), PRESENT))
    sides = _lung_sides(pathologies)
    if not sides:
        body.append(_stamp("The lungs are clear.", _m("clear", ["left_lung_unspec", "right_lung_unspec"]), PRESENT))
    elif len(sides) == 1 and rng.random() < 0.6:
        other = "left" if "right" in sides else "right"
        body.append(_stamp(f"The {other} lung is clear.", _m("clear", [f"{other}_lung_unspec"]), PRESENT))
    # negations of absent findings (a random subset: the rest is simply not mentioned)
    absent = [n for n in _NEGATIONS if n not in names]
    if "effusion" in names:
        f = next(f for f in pathologies if f.name == "effusion")
        if len(f.anatomies) == 1 and rng.random() < 0.5:
            other = "left" if f.anatomies[0].startswith("right") else "right"
            body.append(_stamp(f"No {other} pleural effusion.", [Mention("effusion", f"{other}_pleural", ABSENT, "")],
                               ABSENT))
    elif rng.random() < 0.5:
        body.append(_stamp("Costophrenic angles are sharp.", _m("sharp", ["costophrenic_unspec"]), PRESENT))
    if "pneumothorax" in absent and "consolidation" in absent and rng.random() < 0.3:
        body.append(_stamp("No pneumothorax or focal consolidation.",
                           _m("pneumothorax", []) + _m("consolidation", []), ABSENT))
        absent = [n for n in absent if n not in ("pneumothorax", "consolidation")]
    for n in absent:
        if rng.random() < 0.55:
            s, anat = _NEGATIONS[n][int(rng.integers(0, len(_NEGATIONS[n])))]
            body.append(_stamp(s, _m(FINDING_OBSERVATION[n], [anat]), ABSENT))
    if "emphysema" not in names and rng.random() < 0.25:
        if view == "AP" and rng.random() < 0.4:
            body.append(_stamp("Low lung volumes.", _m("low", ["lung_volumes"]), PRESENT))
        else:
            body.append(_stamp("Lung volumes are normal.", _m("normal", ["lung_volumes"]), PRESENT))
    if rng.random() < 0.3:
        body.append(_stamp("The osseous structures are intact.", _m("intact", ["other"]), PRESENT))
    # impression
    main = [f for f in pathologies if f.name not in hedged]
    if not pathologies:
        if rng.random() < 0.7:
            impression.append(_stamp("No acute cardiopulmonary process.", _m("process", ["cardiopulmonary"]), ABSENT))
        else:
            impression.append(_stamp("Normal chest radiograph.", _m("normal", []), PRESENT))
    else:
        for f in main[:3]:
            s, ms = _present_sentences(rng, f)[0]
            impression.append(_stamp(s, ms, PRESENT))
        if "covid19" in names:
            impression.append(_stamp("Viral pneumonia is possible.", _m("pneumonia", []), UNCERTAIN))
        if not main:
            impression.append(_stamp(body[0][0], body[0][1], body[0][1][0].status))
    text, has_findings = _layout(rng, [s for s, _ in body], [s for s, _ in impression], view, sex)
    mentions: list[Mention] = []
    if has_findings:
        for _, ms in body:
            mentions.extend(ms)
    for _, ms in impression:
        mentions.extend(ms)
    return Report(text=text, mentions=mentions)


def _wrap(sentences: list[str]) -> list[str]:
    para = "  ".join(sentences)
    return [" " + line for line in textwrap.wrap(para, width=77, break_on_hyphens=False)]


def _layout(rng: np.random.Generator, body: list[str], impression: list[str], view: str,
            sex: str) -> tuple[str, bool]:
    """The report text and whether the FINDINGS sentences are in it (some reports have an impression only)."""
    person = "man" if sex == "M" else "woman"
    exam = "CHEST (PA AND LAT)" if view == "PA" else "CHEST (PORTABLE AP)"
    technique = "Chest PA and lateral" if view == "PA" else "Portable AP chest radiograph"
    indication = _pick(rng, ["cough", "shortness of breath", "fever", "chest pain", "dyspnea", "hypoxia",
                             "weakness", "tachycardia"])
    lines = [" " * 33 + "FINAL REPORT", f" EXAMINATION:  {exam}", " ",
             f" INDICATION:  ___ year old {person} with {indication}", " ", f" TECHNIQUE:  {technique}", " ",
             f" COMPARISON:  {_pick(rng, ['___', 'None.', 'Chest radiograph from ___'])}", " "]
    style = rng.random()
    if style < 0.08:  # one combined section
        lines += [" FINDINGS AND IMPRESSION: ", " "] + _wrap(body + impression)
    elif style < 0.15:  # impression only
        lines += [" IMPRESSION: ", " "] + _wrap(impression)
    else:
        lines += [" FINDINGS: ", " "] + _wrap(body) + [" ", " IMPRESSION: ", " "] + _wrap(impression)
    return "\n".join(lines) + "\n", not (0.08 <= style < 0.15)


# ----------------------------------------------------------------------------------------------------------
# CheXpert-style labels from mentions (for mimic-cxr-2.0.0-chexpert.csv.gz)

CHEXPERT_COLUMNS: tuple[str, ...] = (
    "Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Enlarged Cardiomediastinum", "Fracture",
    "Lung Lesion", "Lung Opacity", "No Finding", "Pleural Effusion", "Pleural Other", "Pneumonia", "Pneumothorax",
    "Support Devices",
)
_CHEXPERT_OBS: dict[str, tuple[str, ...]] = {
    "Atelectasis": ("atelectasis",), "Cardiomegaly": ("cardiomegaly",), "Consolidation": ("consolidation",),
    "Edema": ("edema",), "Enlarged Cardiomediastinum": (), "Fracture": ("fracture",),
    "Lung Lesion": ("nodule", "mass"), "Lung Opacity": ("opacity", "infiltrate", "tail_abnorm_obs"),
    "Pleural Effusion": ("effusion",), "Pleural Other": ("thicken",), "Pneumonia": ("pneumonia",),
    "Pneumothorax": ("pneumothorax",), "Support Devices": ("tube", "catheter", "pacemaker", "lead"),
}


def chexpert_labels(mentions: list[Mention]) -> dict[str, float]:
    """CheXpert-style study labels: 1.0 positive, -1.0 uncertain, 0.0 negative, NaN not mentioned."""
    out: dict[str, float] = {}
    for col in CHEXPERT_COLUMNS:
        if col == "No Finding":
            continue
        statuses = {m.status for m in mentions if m.observation in _CHEXPERT_OBS[col]}
        out[col] = (1.0 if PRESENT in statuses else -1.0 if UNCERTAIN in statuses
                    else 0.0 if ABSENT in statuses else float("nan"))
    abnormal = any(v in (1.0, -1.0) for k, v in out.items() if k != "Support Devices")
    out["No Finding"] = float("nan") if abnormal else 1.0
    return {c: out[c] for c in CHEXPERT_COLUMNS}
