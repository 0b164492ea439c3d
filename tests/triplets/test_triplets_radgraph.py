"""medslip.triplets.radgraph on a small hand-written RadGraph JSON (schema: data-formats.md 7.5)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from medslip.triplets.radgraph import (
    anatomies_of, observation_of, radgraph_entry_to_matrix, radgraph_mentions, radgraph_to_matrices,
)
from medslip.vocab import ANATOMY_INDEX, OBSERVATION_INDEX


def ent(tokens: str, label: str, ix: int, *relations: tuple[str, str]) -> dict:
    return {"tokens": tokens, "label": label, "start_ix": ix, "end_ix": ix + len(tokens.split()) - 1,
            "relations": [list(r) for r in relations]}


GRAPHS = {
    "p10/p10000032/s50414267.txt": {
        "text": "FINDINGS : Small left lower lobe opacification . No pleural effusion . "
                "Heart is enlarged . Possible pneumonia . IMPRESSION : Lungs clear .",
        "entities": {
            "1": ent("Small", "OBS-DP", 2, ("modify", "4")),
            "2": ent("left", "ANAT-DP", 3, ("modify", "3")),
            "3": ent("lower lobe", "ANAT-DP", 4),
            "4": ent("opacification", "OBS-DP", 6, ("located_at", "3")),
            "5": ent("pleural", "ANAT-DP", 9),
            "6": ent("effusion", "OBS-DA", 10, ("located_at", "5")),
            "7": ent("Heart", "ANAT-DP", 12),
            "8": ent("enlarged", "OBS-DP", 14, ("located_at", "7")),
            "9": ent("pneumonia", "OBS-U", 17),
            "10": ent("Lungs", "ANAT-DP", 21),
            "11": ent("clear", "OBS-DP", 22, ("located_at", "10")),
            "12": ent("fibrosis", "OBS-DP", 24),
            "13": ent("widget", "OBS-DA", 25, ("located_at", "14")),
            "14": ent("gizmo", "ANAT-DP", 26),
            "15": ent("infection", "OBS-DA", 27),
            "16": ent("infection", "OBS-DP", 28),
        },
        "data_split": "inference", "data_source": None,
    },
    "p10/p10000033/s50000001.txt": {  # annotation-file layout: entities under labeler_1
        "text": "No pneumothorax .",
        "labeler_1": {"entities": {"1": ent("pneumothorax", "OBS-DA", 1)}},
        "labeler_2": {"entities": {}},
    },
}


def cell(mat: np.ndarray, anatomy: str, observation: str) -> int:
    return int(mat[ANATOMY_INDEX[anatomy], OBSERVATION_INDEX[observation]])


def test_radgraph_entry_to_matrix() -> None:
    mat = radgraph_entry_to_matrix(GRAPHS["p10/p10000032/s50414267.txt"])
    assert mat.shape == (51, 75) and mat.dtype == np.int8
    assert cell(mat, "lower_left_lobe", "opacity") == 1  # lemma fix + located_at + modify chain
    assert cell(mat, "pleural_unspec", "effusion") == 0  # OBS-DA
    assert cell(mat, "heart_size", "enlarge") == 1  # published semantics: no cardiomegaly rewrite
    assert cell(mat, "unspecified", "pneumonia") == 1  # OBS-DP after OBS-DA in the same cell: 1 wins
    assert cell(mat, "left_lung_unspec", "clear") == 1 and cell(mat, "right_lung_unspec", "clear") == 1
    assert cell(mat, "unspecified", "tail_abnorm_obs") == 1  # fibrosis
    assert cell(mat, "other", "tail_abnorm_obs") == 0  # unknown term at unknown anatomy
    assert cell(mat, "unspecified", "normal") == -1
    # OBS-U leaves -1, "Small" (unknown modifier term) sets tail at unspecified
    assert (mat == 1).sum() == 6 and (mat == 0).sum() == 2


def test_radgraph_file_and_labeler_layout(tmp_path: Path) -> None:
    path = tmp_path / "graphs.json"
    path.write_text(json.dumps(GRAPHS))
    mats = radgraph_to_matrices(path)
    assert list(mats) == list(GRAPHS)
    second = mats["p10/p10000033/s50000001.txt"]
    assert cell(second, "unspecified", "pneumothorax") == 0 and (second != -1).sum() == 1
    assert np.array_equal(mats["p10/p10000032/s50414267.txt"],
                          radgraph_entry_to_matrix(GRAPHS["p10/p10000032/s50414267.txt"]))


def test_radgraph_term_lookup() -> None:
    assert observation_of("opacification") == "opacity"
    assert observation_of("infection") == "pneumonia"
    assert observation_of("Pleural Effusions") == "effusion"
    assert observation_of("zebra") == "tail_abnorm_obs"
    assert anatomies_of("left lower lobe") == ["lower_left_lobe"]
    assert anatomies_of("left base", observation="effusion") == ["left_costophrenic"]
    assert anatomies_of("gizmo") == ["other"]
    ms = radgraph_mentions(GRAPHS["p10/p10000032/s50414267.txt"])
    assert {m.status for m in ms} == {"present", "absent", "uncertain"}
