"""Sweeps through submitit: the local executor runs the same job function a Slurm array would."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cxrbench.cli import app
from cxrbench.launchers import LauncherOptions, launch
from cxrbench.run import RunOptions
from cxrbench.sweep import Job


@pytest.fixture(scope="module")
def nih_root(tmp_path_factory) -> Path:
    from cxrbench.synth import generate

    return generate("nih-cxr14", tmp_path_factory.mktemp("synth") / "nih", n=96, size=64, seed=2, progress=False)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    import torch

    from medslip import MeDSLIP, MeDSLIPConfig
    from medslip.books import anatomy_texts, encode_books, pathology_texts
    from medslip.checkpoint import save_checkpoint
    from medslip.text import tiny_text_encoder

    torch.manual_seed(0)
    encoder = tiny_text_encoder(width=32)
    model = MeDSLIP(MeDSLIPConfig(backbone="resnet18", num_layers=1, d_model=32, num_heads=2, dim_feedforward=64,
                                  text_width=32), *encode_books(encoder))
    path = tmp_path_factory.mktemp("ckpt") / "tiny"
    save_checkpoint(model, path, pathology_texts(), anatomy_texts(), text_encoder=encoder.identity,
                    extra={"config": {"data": {"image_size": 64}}})
    return path


def _grid(tmp_path: Path, checkpoint: Path) -> Path:
    grid = tmp_path / "grid.yaml"
    grid.write_text("models: [medslip]\ntasks: [nih-zs]\nseeds: [0]\noptions: {n_boot: 20, batch_size: 16}\n"
                    f"model_options:\n  medslip: {{checkpoint: '{checkpoint}'}}\n", encoding="utf-8")
    return grid


def test_local_launcher_runs_the_cell_through_submitit_and_resumes(tmp_path, nih_root, tiny):
    out = tmp_path / "results"
    args = ["sweep", "--grid", str(_grid(tmp_path, tiny)), "--launcher", "local", "--data-root", str(nih_root),
            "--out", str(out), "--no-progress"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    records = sorted(out.glob("medslip/nih-zs/*.json"))
    assert len(records) == 1
    record = json.loads(records[0].read_text())
    assert record["model"]["checkpoint"] == str(tiny) and record["task"]["name"] == "nih-zs"
    # the cell ran as a submitit job: its pickled call and logs are in the launcher folder
    assert list((out / ".submitit").glob("*_submitted.pkl")) and list((out / ".submitit").glob("*_log.out"))
    before = records[0].stat().st_mtime_ns
    again = CliRunner().invoke(app, args)  # resumable: nothing left to submit, the record is kept
    assert again.exit_code == 0, again.output
    assert "submitting 0" in again.output and records[0].stat().st_mtime_ns == before


def test_a_failed_job_is_reported_and_resubmitted_by_the_next_sweep(tmp_path, nih_root, tiny):
    out = tmp_path / "results"
    opts = RunOptions(data_root=nih_root, out=out, n_boot=20, progress=False, checkpoint=tmp_path / "missing")
    job = Job("medslip", "nih-zs", None, 0)
    paths, failures, ids = launch([job], [opts], LauncherOptions(kind="local", folder=tmp_path / "sub"))
    assert paths == [] and len(failures) == 1 and len(ids) == 1
    assert "missing" in failures[0][1] and "_log.err" in failures[0][1]
    fixed = RunOptions(data_root=nih_root, out=out, n_boot=20, progress=False, checkpoint=tiny)
    paths, failures, ids = launch([job], [fixed], LauncherOptions(kind="local", folder=tmp_path / "sub"))
    assert failures == [] and len(paths) == 1 and paths[0].exists() and len(ids) == 1


def test_slurm_launcher_submits_one_throttled_array(tmp_path, nih_root, tiny, monkeypatch):
    """Without a cluster: a stand-in ``sbatch`` records what submitit would hand to Slurm."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    sbatch = bin_dir / "sbatch"
    sbatch.write_text("#!/bin/sh\ncp \"$1\" \"$SBATCH_COPY\"\necho 'Submitted batch job 4242'\n")
    srun = bin_dir / "srun"  # submitit checks that it is on a cluster
    srun.write_text("#!/bin/sh\nexit 0\n")
    for tool in (sbatch, srun):
        tool.chmod(tool.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("SBATCH_COPY", str(tmp_path / "submitted.sh"))
    out = tmp_path / "results"
    jobs = [Job("medslip", "nih-zs", None, s) for s in range(3)]
    opts = [RunOptions(data_root=nih_root, out=out, checkpoint=tiny, progress=False)] * 3
    launcher = LauncherOptions(kind="slurm", folder=tmp_path / "sub", partition="gpu", gpus=1, cpus_per_task=8,
                               time_min=90, array_parallelism=2)
    paths, failures, ids = launch(jobs, opts, launcher)
    assert not launcher.waits and paths == [] and failures == [] and len(ids) == 3
    script = (tmp_path / "submitted.sh").read_text()
    for line in ("#SBATCH --partition=gpu", "#SBATCH --array=0-2%2", "#SBATCH --time=90",
                 "#SBATCH --cpus-per-task=8"):
        assert line in script, script
    assert "--gpus-per-node=1" in script or "--gres=gpu:1" in script, script


@pytest.mark.parametrize("bad", [dict(kind="pbs"), dict(kind="slurm", gpus=-1), dict(kind="local", array_parallelism=0)])
def test_bad_launcher_options_are_refused(bad):
    with pytest.raises(ValueError):
        LauncherOptions(**bad)


def test_unknown_launcher_is_a_one_line_usage_error(tmp_path):
    result = CliRunner().invoke(app, ["sweep", "--launcher", "pbs", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "unknown launcher 'pbs'" in result.output
