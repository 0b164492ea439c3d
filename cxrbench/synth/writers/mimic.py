"""MIMIC-CXR-JPG 2.0.0 with reports (data-formats.md section 5).

``files/pXX/pXXXXXXXX/sXXXXXXXX/<dicom_id>.jpg``, the report beside the study folder
(``files/pXX/pXXXXXXXX/sXXXXXXXX.txt``, leading-space lines), and the gzip CSVs ``mimic-cxr-2.0.0-split``
(``train``/``validate``/``test`` by patient), ``-metadata`` (12 columns), ``-chexpert`` and ``-negbio`` (labels from
the report text).  Ground truth: ``synthcxr_truth.jsonl`` (one line per study, with the report mentions) and
``synthcxr_matrices.npy`` (int8, ``(N_studies, 51, 75)``, same order).  One frontal image per study.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd

from ..render import render_case
from ..reports import CHEXPERT_COLUMNS, chexpert_labels, write_report
from ._common import TRUTH_FILE, Tick, patient_split, save_jpg, truth_record, write_csv_gz, write_jsonl

MATRICES_FILE = "synthcxr_matrices.npy"


def write(root: Path, n: int, size: int, seed: int, tick: Tick) -> dict:
    """Write ``n`` studies of one ``size`` x ``~5/6 size`` JPG each; returns a summary and the study table."""
    rng = np.random.default_rng(seed)
    width = max(64, int(round(size * 5 / 6 / 2)) * 2)
    counts: list[int] = []
    while sum(counts) < n:
        counts.append(int(min(rng.choice([1, 1, 2, 3]), n - sum(counts))))
    subjects = sorted(int(x) for x in rng.choice(np.arange(10_000_000, 20_000_000), len(counts), replace=False))
    studies_all = rng.choice(np.arange(50_000_000, 60_000_000), n, replace=False)
    split = patient_split(rng, subjects, {"train": 0.8, "validate": 0.1, "test": 0.1})
    meta, splits, labels, truth, matrices = [], [], [], [], []
    j = 0
    for sid, c in zip(subjects, counts):
        for study in sorted(int(s) for s in studies_all[j:j + c]):
            j += 1
            case = render_case(rng, "mimic", height=size, width=width, patient_seed=seed * 7919 + sid)
            report = write_report(rng, case.findings, case.patient.view, case.patient.sex)
            dicom_id = "-".join(rng.bytes(4).hex() for _ in range(5))
            sdir = f"files/p{str(sid)[:2]}/p{sid}"
            rel = f"{sdir}/s{study}/{dicom_id}.jpg"
            save_jpg(root / rel, case.image)
            (root / f"{sdir}/s{study}.txt").write_text(report.text, encoding="utf-8")
            view = case.patient.view
            date = int(2110_01_01 + int(rng.integers(0, 80)) * 10000 + int(rng.integers(1, 12)) * 100
                       + int(rng.integers(1, 28)))
            desc = "CHEST (PA AND LAT)" if view == "PA" else "CHEST (PORTABLE AP)"
            meta.append({"dicom_id": dicom_id, "subject_id": sid, "study_id": study,
                         "PerformedProcedureStepDescription": desc, "ViewPosition": view,
                         "Rows": case.image.shape[0], "Columns": case.image.shape[1], "StudyDate": date,
                         "StudyTime": round(float(rng.uniform(0, 235959)), 3),
                         "ProcedureCodeSequence_CodeMeaning": desc,
                         "ViewCodeSequence_CodeMeaning": "postero-anterior" if view == "PA" else "antero-posterior",
                         "PatientOrientationCodeSequence_CodeMeaning": "Erect" if view == "PA" else "Recumbent"})
            splits.append({"dicom_id": dicom_id, "study_id": study, "subject_id": sid, "split": split[sid]})
            labels.append({"subject_id": sid, "study_id": study, **chexpert_labels(report.mentions)})
            matrices.append(report.matrix())
            truth.append(truth_record(case, str(study), rel, subject_id=sid, study_id=study, dicom_id=dicom_id,
                                      split=split[sid], report=f"{sdir}/s{study}.txt",
                                      mentions=[asdict(m) for m in report.mentions]))
            tick(1)
    write_csv_gz(root / "mimic-cxr-2.0.0-metadata.csv.gz", pd.DataFrame(meta))
    write_csv_gz(root / "mimic-cxr-2.0.0-split.csv.gz", pd.DataFrame(splits))
    lab = pd.DataFrame(labels, columns=["subject_id", "study_id", *CHEXPERT_COLUMNS])
    write_csv_gz(root / "mimic-cxr-2.0.0-chexpert.csv.gz", lab)
    write_csv_gz(root / "mimic-cxr-2.0.0-negbio.csv.gz", lab)
    write_jsonl(root / TRUTH_FILE, truth)
    np.save(root / MATRICES_FILE, np.stack(matrices).astype(np.int8))
    return {"studies": n, "subjects": len(subjects),
            "splits": pd.DataFrame(splits)["split"].value_counts().sort_index().to_dict(),
            "chexpert_positive": {c: int((lab[c] == 1.0).sum()) for c in CHEXPERT_COLUMNS},
            "_studies": [(t["path"], t["study_id"], t["split"]) for t in truth], "_matrices": matrices}
