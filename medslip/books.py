"""Text books: one description per observation, one prompt per anatomy, and their embeddings.

The pathology descriptions below are written for this project. To reproduce the released MeDSLIP
checkpoint, load the description file it was trained with via :func:`load_pathology_book`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

from safetensors.torch import load_file, save_file
from torch import Tensor

from medslip.text import TextEncoder, texts_fingerprint
from medslip.vocab import ANATOMIES, OBSERVATIONS

ANATOMY_TEMPLATE = "It is located at {}. "

PATHOLOGY_DESCRIPTIONS: dict[str, str] = {
    "normal": "The chest radiograph shows no abnormality; lungs, heart and bones look as expected.",
    "clear": "The lungs are clear, without focal airspace opacity, fluid or collapse.",
    "sharp": "Margins such as the costophrenic angles or heart border are sharp and well defined.",
    "sharply": "Structures are sharply outlined, with crisp interfaces against aerated lung.",
    "unremarkable": "The region is unremarkable, with nothing of clinical concern seen.",
    "intact": "Bones and devices are intact, with no break, fracture or disruption.",
    "stable": "The appearance is stable and unchanged compared with the previous examination.",
    "free": "The space is free of abnormal air or fluid.",
    "effusion": "Pleural effusion: fluid in the pleural space blunting the costophrenic angle, with a meniscus.",
    "opacity": "An area of increased whiteness in the lung that hides the normal lung markings.",
    "pneumothorax": "Pneumothorax: air between lung and chest wall, a thin visceral pleural line with no vessels beyond it.",
    "edema": "Pulmonary edema: fluid in the lung interstitium and airspaces, hazy perihilar opacities and septal lines.",
    "atelectasis": "Atelectasis: partial collapse of lung with volume loss, linear or plate-like opacity and shift of fissures.",
    "tube": "A tube, such as an endotracheal, enteric or chest tube, projects over the chest.",
    "consolidation": "Consolidation: lung airspaces filled with fluid or cells, a dense opacity with air bronchograms.",
    "process": "An airspace or interstitial process of uncertain cause is present in the lung.",
    "abnormality": "A finding that departs from normal anatomy or appearance.",
    "enlarge": "An organ or structure is larger than normal, for example an enlarged cardiac silhouette.",
    "tip": "The tip of a tube or catheter, whose position is described relative to anatomical landmarks.",
    "low": "Low lung volumes, with the diaphragm high and crowding of the vessels at the bases.",
    "pneumonia": "Pneumonia: infection of the lung causing patchy or lobar airspace opacity.",
    "line": "A line, such as a central venous catheter or PICC, projects over the chest.",
    "congestion": "Pulmonary vascular congestion: engorged, indistinct vessels from raised venous pressure.",
    "catheter": "A catheter is seen within a vessel or cavity of the chest.",
    "cardiomegaly": "Cardiomegaly: the heart is enlarged, the cardiothoracic ratio above one half.",
    "fracture": "A fracture: a break in a rib, clavicle or vertebra, with a lucent line or step.",
    "air": "Abnormal air outside the airways, for example under the diaphragm or in soft tissue.",
    "tortuous": "A tortuous, elongated and unfolded thoracic aorta.",
    "lead": "Pacemaker or defibrillator leads course into the heart chambers.",
    "disease": "Chronic lung or heart disease changes the appearance of the chest.",
    "calcification": "Calcification: dense, very white deposits in vessels, nodes, pleura or cartilage.",
    "prominence": "A structure, such as the hilum or the vessels, appears more prominent than usual.",
    "device": "A medical device projects over the chest.",
    "engorgement": "Engorgement of vessels, with distended pulmonary or mediastinal veins.",
    "picc": "A peripherally inserted central catheter runs from the arm towards the superior vena cava.",
    "clip": "Surgical clips are seen, small metallic densities after surgery.",
    "elevation": "Elevation of a hemidiaphragm above its expected level.",
    "expand": "The lung is expanded, or re-expands after collapse.",
    "nodule": "A nodule: a small round opacity in the lung, under three centimetres.",
    "wire": "Wires, such as sternotomy wires or monitoring leads, project over the chest.",
    "fluid": "Fluid is present, in the pleural space, the fissures or the lung.",
    "degenerative": "Degenerative change of the spine or joints, with osteophytes and narrowed disc spaces.",
    "pacemaker": "A cardiac pacemaker generator in the chest wall with leads into the heart.",
    "thicken": "Pleural thickening: a band of soft tissue along the pleura, often at the apex or base.",
    "marking": "Lung markings, the branching vessels and interstitium, are increased or coarse.",
    "scar": "A scar: a fibrotic linear opacity from previous injury or infection.",
    "hyperinflate": "Hyperinflated lungs with flattened diaphragms and an increased retrosternal space.",
    "blunt": "Blunting of the costophrenic angle, usually from a small effusion or thickening.",
    "loss": "Loss of volume, or loss of a normal silhouette or interface.",
    "widen": "Widening of the mediastinum or of another structure.",
    "collapse": "Collapse of a lobe or the whole lung, with marked volume loss.",
    "density": "An area of increased density that projects over the chest.",
    "emphysema": "Emphysema: destruction of alveolar walls with hyperlucent, hyperinflated lungs.",
    "aerate": "The lung is aerated, or poorly aerated in a region.",
    "mass": "A mass: a lung opacity larger than three centimetres.",
    "crowd": "Crowding of the bronchovascular markings, often from low lung volumes.",
    "infiltrate": "An infiltrate: ill-defined opacity of the lung from fluid, cells or infection.",
    "obscure": "A normal border, such as the diaphragm or heart border, is obscured.",
    "deformity": "A deformity of a bone or of the chest wall, for example after an old fracture.",
    "hernia": "A hernia: abdominal content, such as a hiatal hernia, projecting into the chest.",
    "drainage": "A drain is placed to remove fluid or air from the chest.",
    "distention": "Distention of a hollow structure, such as the stomach or bowel, with gas.",
    "shift": "A shift of the mediastinum or trachea away from or towards one side.",
    "stent": "A stent is seen, in a vessel, airway or the oesophagus.",
    "pressure": "Raised pressure, such as pulmonary venous hypertension.",
    "lesion": "A focal lesion of the lung, pleura or bone.",
    "finding": "A radiological finding of uncertain significance.",
    "borderline": "A borderline finding, at the upper limit of normal, such as borderline heart size.",
    "hardware": "Orthopaedic or surgical hardware projects over the chest.",
    "dilation": "Dilation of a structure, such as the aorta or the bowel.",
    "chf": "Congestive heart failure: cardiomegaly, vascular congestion, edema and effusions.",
    "redistribution": "Upper-lobe redistribution of pulmonary blood flow from raised venous pressure.",
    "aspiration": "Aspiration: inhaled material causing opacity in dependent lung segments.",
    "tail_abnorm_obs": "A rare abnormal finding such as fibrosis, cavitation, granuloma or bronchiectasis.",
    "excluded_obs": "A term that is not a finding, mentioned for comparison or technique.",
}
assert tuple(PATHOLOGY_DESCRIPTIONS) == OBSERVATIONS, "descriptions must follow the vocabulary order"


def pathology_texts() -> list[str]:
    """Our 75 observation descriptions, in vocabulary order."""
    return [PATHOLOGY_DESCRIPTIONS[name] for name in OBSERVATIONS]


def anatomy_texts(names: Sequence[str] = ANATOMIES) -> list[str]:
    """The published anatomy prompts: ``"It is located at <name>. "`` (raw names, underscores kept)."""
    return [ANATOMY_TEMPLATE.format(name) for name in names]


def load_pathology_book(path: str | Path, expected: int = len(OBSERVATIONS)) -> list[str]:
    """Read a pathology description JSON object; its *values, in order,* are the descriptions.

    Keys are ignored (the public copy of the published file misspells one of them).
    """
    with open(path, encoding="utf-8") as handle:
        data = json.load(handle)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object of {expected} descriptions, got {type(data).__name__}")
    values = list(data.values())
    if len(values) != expected:
        raise ValueError(f"{path}: expected {expected} descriptions (one per observation), found {len(values)}")
    bad = [i for i, v in enumerate(values) if not isinstance(v, str) or not v.strip()]
    if bad:
        raise ValueError(f"{path}: descriptions at positions {bad} are not non-empty strings")
    return values


def encode_books(
    encoder: TextEncoder,
    pathology: Sequence[str] | None = None,
    anatomy: Sequence[str] | None = None,
    cache_dir: str | Path | None = None,
) -> tuple[Tensor, Tensor]:
    """Encode both books once; with ``cache_dir`` the embeddings are cached as safetensors.

    Returns (pathology book P x T, anatomy book A x T).
    """
    pathology = list(pathology) if pathology is not None else pathology_texts()
    anatomy = list(anatomy) if anatomy is not None else anatomy_texts()
    key = texts_fingerprint(encoder.identity, encoder.max_length, pathology + ["\x01"] + anatomy)
    cached = Path(cache_dir) / f"books-{key[:32]}.safetensors" if cache_dir is not None else None
    if cached is not None and cached.exists():
        tensors = load_file(cached)
        return tensors["pathology"], tensors["anatomy"]
    books = encoder.encode(pathology), encoder.encode(anatomy)
    if cached is not None:
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_suffix(".tmp")
        save_file({"pathology": books[0].contiguous(), "anatomy": books[1].contiguous()}, str(tmp),
                  metadata={"encoder": encoder.identity})
        tmp.replace(cached)
    return books
