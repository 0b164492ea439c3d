"""The catalogue of bad inputs (``catalogue.py``, shown in ``docs/errors.md``), each run as a user would run it.

Every test asserts the exit code and the message excerpt of its catalogue entry (through :func:`check`),
that the message names the file or value, and that nothing was lost or half-written: the results folder
unchanged (or holding complete records), the image cache consistent, no temporary folder left.
"""

from __future__ import annotations

import builtins
import errno
import io
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.data import builders
from tests.errors.catalogue import BY_ID
from tests.errors.conftest import Outcome, assert_one_line, cli, cli_process, temp_folders

TESTED: set[str] = set()


def _mk(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def check(case_id: str, out: Outcome, *names: str | Path) -> None:
    """``out`` matches catalogue entry ``case_id`` (exit code, excerpt) and names every one of ``names``."""
    case = BY_ID[case_id]
    TESTED.add(case_id)
    if case.code >= 2:
        assert_one_line(out, case.code, case.message, *(str(n) for n in names))
    else:
        assert out.code == case.code, out.output
        assert "Traceback" not in out.output, out.output
        text = " ".join(out.output.split())
        for fragment in (case.message, *(str(n) for n in names)):
            assert fragment in text, (fragment, out.output)


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file below ``folder`` with its bytes (to show that nothing changed)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()} \
        if folder.exists() else {}


def cache_root() -> Path:
    return Path(os.environ["CXRBENCH_CACHE"]) / "images"


def records(folder: Path) -> list[dict]:
    """The result records below ``folder``; each must be complete JSON."""
    return [json.loads(p.read_text()) for p in sorted(folder.rglob("*.json")) if p.parent.name != "splits"
            and p.name.startswith("frac-")]


def zs_args(task: str, root: Path, ckpt: Path, out: Path, *extra: str) -> list[str]:
    return ["run", "--model", "medslip", "--task", task, "--data-root", str(root), "--checkpoint", str(ckpt),
            "--out", str(out), "--n-boot", "10", "--no-progress", *extra]


# ---------------------------------------------------------------------------------- label files, layouts
def _rename_header(path: Path, old: str, new: str) -> None:
    lines = path.read_text().splitlines(keepends=True)
    lines[0] = lines[0].replace(old, new)
    path.write_text("".join(lines))


@pytest.mark.parametrize("case_id,column", [("nih-header-finding-labels", "Finding Labels"),
                                            ("nih-header-patient-id", "Patient ID")])
def test_nih_renamed_header(tmp_path, case_id, column):
    root = builders.make_nih(tmp_path)
    _rename_header(root / "Data_Entry_2017.csv", column, column.replace(" ", "_") + "s")
    out = cli("data", "check", "nih-cxr14", "--root", root, "--labels-only")
    check(case_id, out, root / "Data_Entry_2017.csv", "found")


def test_rsna_renamed_header(tmp_path, tiny_checkpoint):
    root = builders.make_rsna(_mk(tmp_path / "rsna"))
    _rename_header(root / "stage_2_train_labels.csv", "Target", "label")
    results = tmp_path / "results"
    out = cli(*zs_args("rsna-zs", root, tiny_checkpoint, results))
    check("rsna-header", out, root / "stage_2_train_labels.csv", "'label'")
    assert not results.exists()  # refused before a model was loaded or anything written


def test_siim_renamed_header(tmp_path):
    root = builders.make_siim_dicom(tmp_path)
    _rename_header(root / "train-rle.csv", "EncodedPixels", "Pixels")
    check("siim-header", cli("data", "check", "siim-acr", "--root", root, "--labels-only"), root / "train-rle.csv")


def test_covidx_header_line(tmp_path, tiny_checkpoint):
    root = builders.make_covidx(_mk(tmp_path / "covidx"))
    path = root / "train.txt"
    path.write_text("patient_id filename label source\n" + path.read_text())
    out = cli(*zs_args("covidx-zs", root, tiny_checkpoint, tmp_path / "results"))
    check("covidx-header", out, path, "train.txt:1: 'label'")


def test_mimic_without_study_id(tmp_path):
    import pandas as pd

    root = builders.make_mimic(tmp_path)
    table = root / "mimic-cxr-2.0.0-chexpert.csv.gz"
    pd.read_csv(table).drop(columns=["study_id"]).to_csv(table, index=False)
    check("mimic-header", cli("data", "check", "mimic-cxr", "--root", root, "--labels-only"), table, "expected")


def test_covidx_missing_field(tmp_path, tiny_checkpoint):
    root = builders.make_covidx(_mk(tmp_path / "covidx"))
    path = root / "val.txt"
    lines = path.read_text().splitlines()
    lines[1] = " ".join(lines[1].split()[:3])  # the source field is gone
    path.write_text("\n".join(lines) + "\n")
    out = cli(*zs_args("covidx-zs", root, tiny_checkpoint, tmp_path / "results"))
    check("covidx-missing-field", out, path, "val.txt:2")
    report = cli("data", "check", "covidx-cxr4", "--root", root, "--labels-only")
    assert report.code == 1 and "malformed line: 1" in report.output and "val.txt:2" in report.output


@pytest.mark.parametrize("case_id,rle", [("rle-odd", "5 7 9"), ("rle-negative", "5 -7"),
                                         ("rle-out-of-frame", "1048000 1000"), ("rle-non-integer", "5 7.5")])
def test_malformed_rle(tmp_path, tiny_checkpoint, case_id, rle):
    root = builders.make_siim_dicom(_mk(tmp_path / "siim"))
    image_id = "1.2.276.0.7230010.3.1.4.8323329.1.1517875201.1"
    csv = root / "train-rle.csv"
    text = csv.read_text().splitlines()
    text = [line for line in text if not line.startswith(image_id)] + [f"{image_id}, {rle}"]
    csv.write_text("\n".join(text) + "\n")
    results = tmp_path / "results"
    out = cli(*zs_args("siim-seg", root, tiny_checkpoint, results, "--label-frac", "0.5"))
    check(case_id, out, csv, image_id, "malformed RLE")
    assert not results.exists()
    report = cli("data", "check", "siim-acr", "--root", root, "--labels-only")  # the same, listed
    assert report.code == 1 and "malformed RLE: 1" in report.output


def test_box_outside_the_image(tmp_path, tiny_checkpoint):
    root = builders.make_nih(_mk(tmp_path / "nih"))
    boxes = root / "BBox_List_2017.csv"
    boxes.write_text(boxes.read_text() + "00000006_000.png,Mass,1000.0,20.0,100.0,50.0\n")
    out = cli(*zs_args("nih-ground", root, tiny_checkpoint, tmp_path / "results"))
    check("box-outside", out, boxes, "00000006_000.png")


def _pretrain_root(tmp_path: Path, value) -> Path:
    root = tmp_path / "pretrain"
    root.mkdir()
    builders.make_medslip_pretrain(root, root)
    ann = json.loads((root / "train.json").read_text())
    first = next(iter(ann))
    ann[first] = {"labels_id": value}
    (root / "train.json").write_text(json.dumps(ann))
    return root


@pytest.mark.parametrize("case_id,value", [("labels-id-float", 3.0), ("labels-id-out-of-range", 999)])
def test_invalid_labels_id_stops_pretraining(tmp_path, case_id, value):
    root = _pretrain_root(tmp_path, value)
    runs = tmp_path / "run"
    out = cli("train", "medslip", "--data-root", root, "--out", runs, "--no-progress")
    check(case_id, out, root / "train.json", "unknown label")
    assert not runs.exists()  # stopped before any training step (no silent -1 row)


def test_nih_without_train_val_list(tmp_path):
    """Only the official test list: the other images are train (+ val), none lands in the test split."""
    from cxrbench.data.registry import DATASETS

    root = builders.make_nih(tmp_path)
    (root / "train_val_list.txt").unlink()
    check("nih-no-train-val-list", cli("data", "check", "nih-cxr14", "--root", root, "--labels-only"))
    table = DATASETS["nih-cxr14"].load(root, locate_images=False)
    official = set((root / "test_list.txt").read_text().split())
    assert set(table.loc[table["split"] == "test", "image_id"]) == official
    assert set(table["split"]) == {"train", "val", "test"}


# ------------------------------------------------------------------------------------------------ images
def _covidx_copy(copy_of) -> tuple[Path, Path]:
    root = copy_of("covidx-cxr4")
    victim = sorted((root / "test").glob("*.png"))[0]
    return root, victim


@pytest.mark.slow
def test_missing_image(copy_of, tiny_checkpoint, tmp_path):
    root, victim = _covidx_copy(copy_of)
    victim.unlink()
    results = tmp_path / "results"
    out = cli(*zs_args("covidx-zs", root, tiny_checkpoint, results))
    check("missing-image", out, victim)
    assert records(results) == [] and temp_folders(cache_root()) == []
    out = cli(*zs_args("covidx-zs", root, tiny_checkpoint, results, "--skip-bad-images"))
    [record] = records(results)
    assert [s["path"] for s in record["data"]["skipped_files"]] == [str(victim)]
    check("missing-image-skipped", Outcome(out.code, json.dumps(record["data"]), out.stderr))


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def test_truncated_png(copy_of, tiny_checkpoint, tmp_path):
    """The header reads; the pixels do not: found while the cache is built, skipped with --skip-bad-images."""
    from cxrbench.data.images import read_header

    root, victim = _covidx_copy(copy_of)
    _truncate(victim)
    read_header(victim)  # the old header-only preflight let this file through
    results = tmp_path / "results"
    out = cli(*zs_args("covidx-zs", root, tiny_checkpoint, results))
    check("truncated-png", out, victim)
    assert records(results) == [] and temp_folders(cache_root()) == []
    out = cli(*zs_args("covidx-zs", root, tiny_checkpoint, results, "--skip-bad-images"))
    [record] = records(results)
    [skipped] = record["data"]["skipped_files"]
    assert skipped["path"] == str(victim) and "cannot decode" in skipped["reason"]
    check("truncated-png-skipped", Outcome(out.code, json.dumps(record["data"]), out.stderr))
    assert temp_folders(cache_root()) == []
    for index in cache_root().rglob("index.json"):  # every finished cache is complete and consistent
        meta = json.loads(index.read_text())
        assert (index.parent / "pixels.u8").stat().st_size == len(meta["paths"]) * meta["size"] ** 2


def test_truncated_dicom(tmp_path):
    root = builders.make_rsna(tmp_path)
    victim = sorted((root / "stage_2_train_images").glob("*.dcm"))[3]
    _truncate(victim)
    check("truncated-dicom", cli("data", "check", "rsna-pneumonia", "--root", root, "--decode"), victim.name)


def test_dicom_without_pixel_data(tmp_path):
    import pydicom

    root = builders.make_rsna(tmp_path)
    victim = sorted((root / "stage_2_train_images").glob("*.dcm"))[2]
    ds = pydicom.dcmread(victim)
    del ds.PixelData
    ds.save_as(victim)
    check("dicom-without-pixels", cli("data", "check", "rsna-pneumonia", "--root", root), victim.name)


def test_jpeg_with_png_name(tmp_path):
    from cxrbench.data.images import read_image

    root = builders.make_covidx(tmp_path)
    victim = root / "train" / "A2.png"
    Image.fromarray(np.full((32, 32), 200, np.uint8)).save(victim, format="JPEG")
    assert victim.read_bytes()[:2] == b"\xff\xd8"  # JPEG bytes under a .png name
    check("jpeg-as-png", cli("data", "check", "covidx-cxr4", "--root", root, "--decode"))
    assert abs(float(read_image(victim).mean()) - 200 / 255) < 0.02


def test_16_bit_png(tmp_path):
    from cxrbench.data.images import read_image

    root = builders.make_covidx(tmp_path)
    victim = root / "train" / "A2.png"
    Image.fromarray(np.full((32, 32), 40000, np.uint16)).save(victim)
    assert Image.open(victim).mode.startswith("I")
    check("png-16-bit", cli("data", "check", "covidx-cxr4", "--root", root, "--decode"))
    assert abs(float(read_image(victim).max()) - 40000 / 65535) < 1e-4  # scaled by the 16-bit range, not clipped


# -------------------------------------------------------------------------------------- options and names
@pytest.mark.parametrize("case_id,value", [("label-frac-0", "0"), ("label-frac-1.5", "1.5"), ("label-frac-abc", "abc")])
def test_label_fraction(tmp_path, case_id, value):
    out = cli("run", "--model", "medslip", "--task", "siim-seg", "--label-frac", value, "--out", tmp_path / "r")
    check(case_id, out, value)
    assert not (tmp_path / "r").exists()


def test_training_split_without_positives(tmp_path, tiny_checkpoint):
    root = builders.make_covidx(_mk(tmp_path / "covidx"))
    path = root / "train.txt"
    path.write_text(path.read_text().replace(" positive ", " negative "))
    results = tmp_path / "results"
    out = cli(*zs_args("covidx-ft", root, tiny_checkpoint, results, "--label-frac", "0.5", "--epochs", "1"))
    check("no-positives", out, "training split")
    assert records(results) == []


def test_unknown_names(tmp_path):
    check("missing-option", cli("run", "--task", "nih-zs"), "run --help")
    check("unknown-task", cli("run", "--model", "medslip", "--task", "nope"), "nih-zs")
    check("unknown-model", cli("run", "--model", "nope", "--task", "nih-zs"), "medslip")
    check("unknown-dataset", cli("data", "check", "nope", "--root", tmp_path), "nih-cxr14")
    check("unknown-grid", cli("sweep", "--grid", "nope", "--out", tmp_path / "s"), "demo")
    check("bad-shard", cli("sweep", "--shard", "3/2", "--out", tmp_path / "s"))
    check("synth-unknown-dataset", cli("synth", "nope", "--out", tmp_path / "x"), "covidx-cxr4")
    check("leaderboard-no-results", cli("leaderboard", "--results", tmp_path / "none"), tmp_path / "none")
    check("prep-no-root", cli("prep", "mimic", "--root", tmp_path / "none", "--out", tmp_path / "o"),
          tmp_path / "none")
    assert not (tmp_path / "s").exists() and not (tmp_path / "x").exists() and not (tmp_path / "o").exists()


def test_cuda_unavailable(tmp_path, tiny_checkpoint):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    out = cli(*zs_args("covidx-zs", builders.make_covidx(_mk(tmp_path / "c")), tiny_checkpoint, tmp_path / "r",
                       "--device", "cuda"))
    check("cuda-unavailable", out, "--device cuda")


def test_debug_shows_the_traceback(tmp_path):
    """Only with --debug does the exception (and so its traceback) reach the user."""
    from typer.testing import CliRunner

    from cxrbench.cli import app

    result = CliRunner().invoke(app, ["--debug", "data", "check", "nope", "--root", str(tmp_path)])
    assert isinstance(result.exception, KeyError)
    os.environ.pop("CXRBENCH_DEBUG", None)


# ------------------------------------------------------------------------------------------- checkpoints
def test_checkpoint_of_another_model(tmp_path):
    from safetensors.torch import save_file
    import torch

    other = tmp_path / "clip-final"
    other.mkdir()
    save_file({"visual.weight": torch.zeros(2, 2)}, str(other / "model.safetensors"))
    (other / "clip.json").write_text("{}")
    out = cli("run", "--model", "medslip", "--task", "covidx-zs", "--checkpoint", other, "--out", tmp_path / "r")
    check("checkpoint-other-model", out, other)
    assert not (tmp_path / "r").exists()


def test_checkpoint_with_missing_and_unexpected_keys(tmp_path, tiny_checkpoint):
    from safetensors.torch import load_file, save_file
    import torch

    ckpt = tmp_path / "edited"
    shutil.copytree(tiny_checkpoint, ckpt)
    tensors = load_file(str(ckpt / "model.safetensors"))
    assert "classifier_pathology.bias" in tensors
    del tensors["classifier_pathology.bias"]
    tensors["extra.weight"] = torch.zeros(3)
    save_file(tensors, str(ckpt / "model.safetensors"))
    out = cli("run", "--model", "medslip", "--task", "covidx-zs", "--checkpoint", ckpt, "--out", tmp_path / "r")
    check("checkpoint-keys", out, ckpt)


class _Payload:
    """Unpickling this would create a file: the test shows that it is never unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "executed"))


def test_pickle_payload_is_not_executed(tmp_path):
    import torch

    marker = tmp_path / "pwned"
    pth = tmp_path / "medslip.pth"
    torch.save({"model": {"w": torch.zeros(1)}, "payload": _Payload(marker)}, pth)
    out = cli("run", "--model", "medslip", "--task", "covidx-zs", "--checkpoint", pth, "--text-encoder",
              "tiny-random", "--out", tmp_path / "r")
    check("checkpoint-pickle", out, pth)
    assert not marker.exists()


# ------------------------------------------------------------------------------- data root, demo weights
def test_data_root_missing_and_empty(tmp_path):
    """Refused at once: no demo checkpoint is trained and no model loaded first (the case under "Why")."""
    from cxrbench.train import demo_checkpoint

    missing = tmp_path / "nonexistent"
    out = cli("run", "--model", "medslip", "--task", "nih-zs", "--data-root", missing, "--use-demo-checkpoint")
    check("data-root-missing", out, missing)
    empty = tmp_path / "empty"
    empty.mkdir()
    out = cli("run", "--model", "medslip", "--task", "nih-zs", "--data-root", empty, "--use-demo-checkpoint")
    check("data-root-empty", out, empty)
    out = cli("sweep", "--models", "medslip", "--tasks", "covidx-zs", "--data-root", missing, "--use-demo-checkpoint",
              "--out", tmp_path / "s")
    check("sweep-data-root-missing", out, missing)
    assert not (demo_checkpoint("medslip") / "medslip.json").exists() and not (tmp_path / "s").exists()


def test_demo_checkpoint_refused_on_real_data(tmp_path):
    root = builders.make_covidx(_mk(tmp_path / "covidx"))
    out = cli("run", "--model", "medslip", "--task", "covidx-zs", "--data-root", root, "--out", tmp_path / "r")
    check("demo-checkpoint-run", out, root, "medslip", "synthetic")
    out = cli("sweep", "--models", "medslip", "--tasks", "covidx-zs", "--data-root", root, "--out", tmp_path / "s")
    check("demo-checkpoint-sweep", out, "medslip")
    assert not (tmp_path / "r").exists() and not (tmp_path / "s").exists()


# --------------------------------------------------------------------------------------------- results
def test_record_already_present(tmp_path, tiny_checkpoint):
    root = builders.make_covidx(_mk(tmp_path / "covidx"))
    results = tmp_path / "results"
    record = results / "medslip" / "covidx-zs" / "frac-none_seed-none.json"
    record.parent.mkdir(parents=True)
    record.write_text('{"kept": true}\n')
    before = snapshot(results)
    check("record-exists", cli(*zs_args("covidx-zs", root, tiny_checkpoint, results)), record)
    assert snapshot(results) == before


def test_read_only_output_folder(tmp_path, tiny_checkpoint, monkeypatch):
    """Simulated (tests may run as root, who writes anywhere): every write below the folder fails EROFS."""
    root = builders.make_covidx(_mk(tmp_path / "covidx"))
    results = tmp_path / "results"
    results.mkdir()
    (results / "note.txt").write_text("kept")
    before = snapshot(results)

    def guarded(fn, position=0):
        def wrapper(*args, **kwargs):
            target = args[position] if len(args) > position else kwargs.get("file", kwargs.get("dir"))
            mode = args[1] if len(args) > 1 and isinstance(args[1], str) else kwargs.get("mode", "r")
            writing = fn is not builtins.open and fn is not io.open or any(c in str(mode) for c in "wax+")
            if target is not None and writing and str(results) in str(Path(str(target)).absolute()):
                raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(target))
            return fn(*args, **kwargs)
        return wrapper

    monkeypatch.setattr(os, "mkdir", guarded(os.mkdir))
    monkeypatch.setattr(builtins, "open", guarded(builtins.open))
    monkeypatch.setattr(io, "open", guarded(io.open))
    monkeypatch.setattr(tempfile, "mkstemp", guarded(tempfile.mkstemp, position=99))
    out = cli(*zs_args("covidx-zs", root, tiny_checkpoint, results))
    monkeypatch.undo()
    check("read-only-out", out, results)
    assert snapshot(results) == before


@pytest.mark.slow
def test_disk_full_while_writing_the_record(tmp_path, tiny_checkpoint, monkeypatch):
    """The disk fills half-way through the record: no record, no temporary file; a rerun writes it."""
    import medslip.atomic

    root = builders.make_covidx(_mk(tmp_path / "covidx"))
    results = tmp_path / "results"
    real = medslip.atomic.write_text_atomic

    def full_disk(path, text):
        if Path(path).name.startswith("frac-"):
            with medslip.atomic.atomic_path(path) as tmp:
                tmp.write_text(text[: len(text) // 2])
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(path, text)

    monkeypatch.setattr(medslip.atomic, "write_text_atomic", full_disk)
    out = cli(*zs_args("covidx-zs", root, tiny_checkpoint, results))
    monkeypatch.undo()
    record = results / "medslip" / "covidx-zs" / "frac-none_seed-none.json"
    check("disk-full", out, record)
    assert not record.exists() and list(record.parent.glob(".*.tmp")) == []
    assert cli(*zs_args("covidx-zs", root, tiny_checkpoint, results)).code == 0
    [written] = records(results)
    assert written["task"]["name"] == "covidx-zs"


# --------------------------------------------------------------------------------------- kill -9 cases
KILL_SELF = "import os, signal\ndef _die(*a, **k):\n    os.kill(os.getpid(), signal.SIGKILL)\n"


@pytest.mark.slow
def test_kill_during_cache_build(copy_of, tiny_checkpoint, tmp_path):
    root, _ = _covidx_copy(copy_of)
    results = tmp_path / "results"
    cache = tmp_path / "cache"
    prelude = KILL_SELF + ("import cxrbench.data.cache as c\n_real = c._decode_into\n"
                           "def _half(pixels, items, todo, *a, **k):\n    pixels[todo[: len(todo) // 2]] = 7\n"
                           "    _die()\nc._decode_into = _half\n")
    env = {"CXRBENCH_CACHE": str(cache)}
    killed = cli_process(*zs_args("covidx-zs", root, tiny_checkpoint, results), prelude=prelude, env=env)
    assert killed.returncode == -9
    assert temp_folders(cache) != [] and records(results) == []  # what kill -9 leaves: an unfinished build
    rerun = cli_process(*zs_args("covidx-zs", root, tiny_checkpoint, results), env=env)
    assert rerun.returncode == BY_ID["kill-cache-build"].code, rerun.stderr
    TESTED.add("kill-cache-build")
    assert temp_folders(cache) == [] and len(records(results)) == 1
    [index] = list(cache.rglob("index.json"))
    meta = json.loads(index.read_text())
    assert (index.parent / "pixels.u8").stat().st_size == len(meta["paths"]) * meta["size"] ** 2


@pytest.mark.slow
def test_kill_during_record_write(tmp_path, tiny_checkpoint):
    root = builders.make_covidx(_mk(tmp_path / "covidx"))
    results = tmp_path / "results"
    prelude = KILL_SELF + ("import medslip.atomic as a\n_real = a.write_text_atomic\n"
                           "def _write(path, text):\n    if os.path.basename(str(path)).startswith('frac-'):\n"
                           "        with a.atomic_path(path) as tmp:\n            tmp.write_text(text[:100])\n"
                           "            _die()\n    return _real(path, text)\na.write_text_atomic = _write\n")
    killed = cli_process(*zs_args("covidx-zs", root, tiny_checkpoint, results), prelude=prelude)
    assert killed.returncode == -9
    record = results / "medslip" / "covidx-zs" / "frac-none_seed-none.json"
    assert not record.exists()  # never a half record under the real name
    rerun = cli_process(*zs_args("covidx-zs", root, tiny_checkpoint, results))
    assert rerun.returncode == BY_ID["kill-record-write"].code, rerun.stderr
    TESTED.add("kill-record-write")
    assert json.loads(record.read_text())["task"]["name"] == "covidx-zs"
    assert list(record.parent.glob(".*.tmp")) == []  # the rerun removed the killed write's leftover


@pytest.mark.slow
def test_kill_during_sweep(tmp_path, tiny_checkpoint):
    root = builders.make_covidx(_mk(tmp_path / "covidx"))
    results = tmp_path / "results"
    grid = tmp_path / "grid.yaml"
    # zero-shot cells run once (protocol v2), so the grid's several cells are fine-tuning seeds
    grid.write_text(f"models: [medslip]\ntasks: [covidx-ft]\nlabel_fracs: [1.0]\nseeds: [0, 1, 2]\n"
                    f"options: {{n_boot: 10, epochs: 1, batch_size: 8}}\n"
                    f"model_options:\n  medslip: {{checkpoint: '{tiny_checkpoint}'}}\n")
    args = ["sweep", "--grid", grid, "--data-root", root, "--out", results, "--no-progress"]
    prelude = KILL_SELF + ("import cxrbench.run as r\n_real = r.write_record\n_n = [0]\n"
                           "def _write(*a, **k):\n    _n[0] += 1\n    if _n[0] == 2:\n        _die()\n"
                           "    return _real(*a, **k)\nr.write_record = _write\n")
    killed = cli_process(*args, prelude=prelude)
    assert killed.returncode == -9
    [first] = list(results.rglob("frac-*.json"))
    kept = first.read_bytes()
    rerun = cli_process(*args)
    assert rerun.returncode == BY_ID["kill-sweep"].code, rerun.stderr
    TESTED.add("kill-sweep")
    assert first.read_bytes() == kept  # the finished job was kept, not redone
    assert sorted(r["seed"] for r in records(results)) == [0, 1, 2]


@pytest.mark.slow
def test_use_demo_checkpoint_is_explicit_and_recorded(tmp_path, tiny_checkpoint, monkeypatch):
    """With the option the demo weights are evaluated, and the record says so (``"weights": "demo"``)."""
    import dataclasses

    import cxrbench.run
    from cxrbench.models.medslip import MedslipAdapter

    real = cxrbench.run.get_model

    def get_model(name):  # the demo checkpoint, without pre-training it here: the tiny one stands in
        entry = real(name)
        return dataclasses.replace(entry, load=lambda checkpoint=None, **kw: MedslipAdapter.from_checkpoint(
            checkpoint or tiny_checkpoint))

    monkeypatch.setattr(cxrbench.run, "get_model", get_model)
    root = builders.make_covidx(_mk(tmp_path / "covidx"))
    results = tmp_path / "results"
    args = ["run", "--model", "medslip", "--task", "covidx-zs", "--data-root", root, "--out", results,
            "--n-boot", "10", "--no-progress"]
    assert cli(*args).code == 2 and not results.exists()
    out = cli(*args, "--use-demo-checkpoint")
    assert out.code == 0, out.output
    [record] = records(results)
    assert record["model"]["weights"] == "demo" and record["data"]["synthetic"] is False
