"""Reports: layout, and ground truth that is exactly what the text says (matrix semantics)."""

from __future__ import annotations

import json

import numpy as np

from cxrbench.synth import mentions_to_matrix, render_case, write_report
from cxrbench.synth.reports import ABSENT, PRESENT, UNCERTAIN, Mention, chexpert_labels
from medslip.vocab import ANATOMY_INDEX, OBSERVATION_INDEX


def _reports(n=150, seed=0):
    rng = np.random.default_rng(seed)
    for _ in range(n):
        case = render_case(rng, "mimic", height=64)
        yield case, write_report(rng, case.findings, case.patient.view, case.patient.sex)


def test_matrix_semantics():
    ms = [Mention("effusion", "left_pleural", ABSENT, "a"), Mention("effusion", "left_pleural", PRESENT, "b"),
          Mention("pneumothorax", "unspecified", ABSENT, "c"), Mention("nodule", "right_upper_lung", UNCERTAIN, "d"),
          Mention("edema", "pulmonary", PRESENT, "e"), Mention("edema", "pulmonary", ABSENT, "f")]
    m = mentions_to_matrix(ms)
    assert m.dtype == np.int8 and m.shape == (51, 75)
    a, o = ANATOMY_INDEX, OBSERVATION_INDEX
    assert m[a["left_pleural"], o["effusion"]] == 1
    assert m[a["unspecified"], o["pneumothorax"]] == 0
    assert m[a["right_upper_lung"], o["nodule"]] == -1
    assert m[a["pulmonary"], o["edema"]] == 1
    assert (m == -1).sum() == 51 * 75 - 3


def test_mentions_are_in_the_text_and_in_the_vocabulary():
    for case, rep in _reports():
        text = " ".join(rep.text.split())
        assert rep.mentions
        for m in rep.mentions:
            assert m.observation in OBSERVATION_INDEX and m.anatomy in ANATOMY_INDEX
            assert m.sentence and m.sentence in text
        matrix = rep.matrix()
        for m in rep.mentions:
            cell = matrix[ANATOMY_INDEX[m.anatomy], OBSERVATION_INDEX[m.observation]]
            if m.status == PRESENT:
                assert cell == 1
            elif m.status == ABSENT:
                assert cell >= 0
        assert set(np.unique(matrix)) <= {-1, 0, 1}


def test_negations_never_contradict_the_image():
    for case, rep in _reports():
        present = {f.name for f in case.findings}
        for m in rep.mentions:
            if m.status == ABSENT and m.anatomy in ("unspecified", "pleural_unspec"):
                assert {"pneumothorax": "pneumothorax", "effusion": "effusion", "consolidation": "consolidation",
                        "edema": "edema", "pneumonia": "pneumonia", "nodule": "nodule"}[m.observation] not in present
            if m.status == PRESENT and m.observation not in ("normal", "clear", "sharp", "unremarkable", "intact",
                                                             "low", "lead"):
                assert any(m.anatomy in f.anatomies or m.anatomy in ("heart_size", "other", "unspecified")
                           for f in case.findings)


def test_report_variety_and_statuses():
    sentences, statuses, layouts = set(), set(), set()
    for case, rep in _reports(300, seed=1):
        sentences |= {m.sentence for m in rep.mentions}
        statuses |= {m.status for m in rep.mentions}
        layouts.add("FINDINGS AND IMPRESSION:" in rep.text or ("FINDINGS:" in rep.text))
    assert statuses == {PRESENT, ABSENT, UNCERTAIN}
    assert len(sentences) > 150 and layouts == {True, False}


def test_chexpert_labels_follow_mentions(corpora):
    import pandas as pd

    root = corpora["mimic-cxr"]
    chex = pd.read_csv(root / "mimic-cxr-2.0.0-chexpert.csv.gz").set_index("study_id")
    for line in (root / "synthcxr_truth.jsonl").read_text().splitlines():
        rec = json.loads(line)
        labels = chexpert_labels([Mention(**m) for m in rec["mentions"]])
        row = chex.loc[rec["study_id"]]
        for k, v in labels.items():
            assert (np.isnan(v) and np.isnan(row[k])) or v == row[k]
