"""The MeDSLIP vocabularies.

The order of both lists is the query order of the published checkpoint: changing it silently
permutes every query, so it is frozen here and checked by the tests.
"""

from __future__ import annotations

ANATOMIES: tuple[str, ...] = (
    "trachea", "left_hilar", "right_hilar", "hilar_unspec", "left_pleural", "right_pleural",
    "pleural_unspec", "heart_size", "heart_border", "left_diaphragm", "right_diaphragm",
    "diaphragm_unspec", "retrocardiac", "lower_left_lobe", "upper_left_lobe", "lower_right_lobe",
    "middle_right_lobe", "upper_right_lobe", "left_lower_lung", "left_mid_lung", "left_upper_lung",
    "left_apical_lung", "left_lung_unspec", "right_lower_lung", "right_mid_lung", "right_upper_lung",
    "right_apical_lung", "right_lung_unspec", "lung_apices", "lung_bases", "left_costophrenic",
    "right_costophrenic", "costophrenic_unspec", "cardiophrenic_sulcus", "mediastinal", "spine",
    "clavicle", "rib", "stomach", "right_atrium", "right_ventricle", "aorta", "svc", "interstitium",
    "parenchymal", "cavoatrial_junction", "cardiopulmonary", "pulmonary", "lung_volumes",
    "unspecified", "other",
)

OBSERVATIONS: tuple[str, ...] = (
    "normal", "clear", "sharp", "sharply", "unremarkable", "intact", "stable", "free", "effusion",
    "opacity", "pneumothorax", "edema", "atelectasis", "tube", "consolidation", "process",
    "abnormality", "enlarge", "tip", "low", "pneumonia", "line", "congestion", "catheter",
    "cardiomegaly", "fracture", "air", "tortuous", "lead", "disease", "calcification", "prominence",
    "device", "engorgement", "picc", "clip", "elevation", "expand", "nodule", "wire", "fluid",
    "degenerative", "pacemaker", "thicken", "marking", "scar", "hyperinflate", "blunt", "loss",
    "widen", "collapse", "density", "emphysema", "aerate", "mass", "crowd", "infiltrate", "obscure",
    "deformity", "hernia", "drainage", "distention", "shift", "stent", "pressure", "lesion",
    "finding", "borderline", "hardware", "dilation", "chf", "redistribution", "aspiration",
    "tail_abnorm_obs", "excluded_obs",
)

#: The first eight observations describe normality ("clear", "sharp", ...).
NORMAL_OBSERVATIONS: tuple[str, ...] = OBSERVATIONS[:8]

NUM_ANATOMIES = len(ANATOMIES)  # 51
NUM_OBSERVATIONS = len(OBSERVATIONS)  # 75

ANATOMY_INDEX = {name: i for i, name in enumerate(ANATOMIES)}
OBSERVATION_INDEX = {name: i for i, name in enumerate(OBSERVATIONS)}

#: Published zero-shot mapping from NIH ChestX-ray14 labels to observation queries.
NIH_TO_OBSERVATION: dict[str, str] = {
    "Atelectasis": "atelectasis",
    "Cardiomegaly": "cardiomegaly",
    "Effusion": "effusion",
    "Infiltration": "infiltrate",
    "Mass": "mass",
    "Nodule": "nodule",
    "Pneumonia": "pneumonia",
    "Pneumothorax": "pneumothorax",
    "Consolidation": "consolidation",
    "Edema": "edema",
    "Emphysema": "emphysema",
    "Fibrosis": "tail_abnorm_obs",
    "Pleural_Thickening": "thicken",
    "Hernia": "hernia",
}


def observation_index(name: str) -> int:
    """Index of an observation query; raises a KeyError that lists the vocabulary."""
    try:
        return OBSERVATION_INDEX[name]
    except KeyError:
        raise KeyError(f"{name!r} is not a MeDSLIP observation; known: {', '.join(OBSERVATIONS)}") from None


def anatomy_index(name: str) -> int:
    """Index of an anatomy query; raises a KeyError that lists the vocabulary."""
    try:
        return ANATOMY_INDEX[name]
    except KeyError:
        raise KeyError(f"{name!r} is not a MeDSLIP anatomy; known: {', '.join(ANATOMIES)}") from None
