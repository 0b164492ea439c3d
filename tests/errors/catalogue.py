"""The catalogue of bad inputs: what a user gives, the message they get (an excerpt of it), the exit code.

``docs/errors.md`` shows this table; ``test_docs.py`` keeps the two in step and checks that every entry has
its test in ``test_catalogue.py`` (the test asserts the same excerpt and exit code, through :func:`check`).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Case:
    id: str
    input: str  # what the user gives (markdown allowed)
    message: str  # an excerpt of the one-line message (or, for exit 0 / 1, of the output)
    code: int
    slow: bool = False


CASES: tuple[Case, ...] = (
    # -- label files and layouts ------------------------------------------------------------------------
    Case("nih-header-finding-labels", "NIH `Data_Entry_2017.csv` with the `Finding Labels` header renamed",
         "missing column(s) 'Finding Labels'", 2),
    Case("nih-header-patient-id", "NIH `Data_Entry_2017.csv` with the `Patient ID` header renamed",
         "missing column(s) 'Patient ID'", 2),
    Case("rsna-header", "RSNA `stage_2_train_labels.csv` with `Target` renamed", "missing column(s) 'Target'", 2),
    Case("siim-header", "SIIM `train-rle.csv` with `EncodedPixels` renamed", "missing column(s) 'EncodedPixels'", 2),
    Case("covidx-header", "COVIDx `train.txt` with a header line added", "unknown label problem(s)", 2),
    Case("mimic-header", "MIMIC CheXpert table without its `study_id` column", "missing column(s) 'study_id'", 2),
    Case("covidx-missing-field", "COVIDx line with a missing field", "malformed line problem(s)", 2),
    Case("rle-odd", "SIIM RLE with an odd number of tokens", "odd number of RLE tokens", 2),
    Case("rle-negative", "SIIM RLE with a negative number", "negative start or length in RLE", 2),
    Case("rle-out-of-frame", "SIIM RLE running past the 1024x1024 frame", "RLE runs past the end of a 1024x1024 frame", 2),
    Case("rle-non-integer", "SIIM RLE with a non-integer token", "non-integer token in RLE", 2),
    Case("box-outside", "NIH box reaching outside the 1024-px image", "outside the 1024x1024 label frame", 2),
    Case("labels-id-float", "pre-training `train.json` with `labels_id` 3.0", "labels_id 3.0 is not a row", 2),
    Case("labels-id-out-of-range", "pre-training `train.json` with a `labels_id` past the matrix",
         "labels_id 999 is not a row", 2),
    Case("nih-no-train-val-list", "NIH without `train_val_list.txt` (only the official test list)",
         "OK: no problems found", 0),
    # -- images -------------------------------------------------------------------------------------------
    Case("missing-image", "an image listed in the labels but absent", "file not found", 2, slow=True),
    Case("missing-image-skipped", "the same with `--skip-bad-images`", "skipped_files", 0, slow=True),
    Case("truncated-png", "a PNG truncated to half its bytes", "cannot decode image", 2),
    Case("truncated-png-skipped", "the same with `--skip-bad-images`", "skipped_files", 0),
    Case("truncated-dicom", "a DICOM truncated to half its bytes (`data check --decode`)", "unreadable image: 1", 1),
    Case("dicom-without-pixels", "a DICOM without pixel data", "DICOM file has no pixel data", 1),
    Case("jpeg-as-png", "a JPEG file with a `.png` name", "OK: no problems found", 0),
    Case("png-16-bit", "a 16-bit PNG", "OK: no problems found", 0),
    # -- options and names --------------------------------------------------------------------------------
    Case("label-frac-0", "`--label-frac 0`", "--label-frac 0: 0 is not in (0, 1]", 2),
    Case("label-frac-1.5", "`--label-frac 1.5`", "--label-frac 1.5: 1.5 is not in (0, 1]", 2),
    Case("label-frac-abc", "`--label-frac abc`", "--label-frac abc: 'abc' is not a number", 2),
    Case("no-positives", "`ft` on a training split without a positive label", "has no positive label", 2),
    Case("missing-option", "`run` without `--model`", "Missing option '--model'", 2),
    Case("unknown-task", "`--task nope`", "unknown task 'nope'", 2),
    Case("unknown-model", "`--model nope`", "unknown model 'nope'", 2),
    Case("unknown-dataset", "`data check nope`", "unknown dataset 'nope'", 2),
    Case("unknown-grid", "`sweep --grid nope`", "no grid 'nope'", 2),
    Case("bad-shard", "`sweep --shard 3/2`", "--shard 3/2", 2),
    Case("cuda-unavailable", "`--device cuda` on a machine without CUDA", "CUDA is not available", 2),
    Case("synth-unknown-dataset", "`synth nope`", "unknown dataset 'nope'", 2),
    Case("leaderboard-no-results", "`leaderboard --results` of a missing folder", "results folder not found", 2),
    Case("prep-no-root", "`prep mimic --root` of a missing folder", "no such folder", 2),
    # -- checkpoints --------------------------------------------------------------------------------------
    Case("checkpoint-other-model", "`--checkpoint` of another model's folder", "not a medslip checkpoint", 2),
    Case("checkpoint-keys", "a checkpoint with a missing and an unexpected key",
         "1 missing key(s) (e.g. classifier_pathology.bias); 1 unexpected key(s) (e.g. extra.weight)", 2),
    Case("checkpoint-pickle", "a `.pth` carrying a pickle payload (it must not run)",
         "refused: the file holds Python objects other than tensors", 2),
    # -- data root and demo weights -----------------------------------------------------------------------
    Case("data-root-missing", "`--data-root /nonexistent`", "no such folder", 2),
    Case("data-root-empty", "an empty `--data-root`", "the folder is empty", 2),
    Case("sweep-data-root-missing", "`sweep --data-root /nonexistent`", "no such folder", 2),
    Case("demo-checkpoint-run", "`run --data-root DIR` without `--checkpoint`", "--use-demo-checkpoint", 2),
    Case("demo-checkpoint-sweep", "`sweep --data-root DIR` with a model without checkpoint", "--use-demo-checkpoint", 2),
    # -- results ------------------------------------------------------------------------------------------
    Case("record-exists", "a record that is already present", "exists; use --skip-existing", 2),
    Case("read-only-out", "a read-only output folder (simulated)", "Read-only file system", 2),
    Case("disk-full", "a full disk while the record is written (simulated)", "No space left on device", 2,
         slow=True),
    # -- interruptions (kill -9), each followed by a rerun that completes ---------------------------------
    Case("kill-cache-build", "`kill -9` during the image cache build, then a rerun", "(rerun: exit 0)", 0, slow=True),
    Case("kill-record-write", "`kill -9` while the record is written, then a rerun", "(rerun: exit 0)", 0, slow=True),
    Case("kill-sweep", "`kill -9` during a sweep, then a rerun", "(rerun: exit 0)", 0, slow=True),
)

BY_ID = {case.id: case for case in CASES}


def markdown_table() -> str:
    """The catalogue as the markdown table of ``docs/errors.md``."""
    lines = ["| id | input | message (excerpt) | exit code |", "|---|---|---|---|"]
    for case in CASES:
        message = case.message.replace("|", "\\|")
        code = f"{case.code} (slow test)" if case.slow else str(case.code)
        lines.append(f"| `{case.id}` | {case.input} | `{message}` | {code} |")
    return "\n".join(lines)
