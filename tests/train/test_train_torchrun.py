"""`cxrbench train` under torchrun on CPU: two gloo ranks through the real command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch

TINY = ["--set", "model.d_model=32", "--set", "model.num_layers=1", "--set", "model.num_heads=2",
        "--set", "model.dim_feedforward=64", "--set", "data.image_size=64", "--set", "text_encoder=tiny-random",
        "--set", "train.batch_size=4", "--set", "train.max_steps=2", "--set", "train.log_every=1",
        "--set", "train.num_workers=0"]


def _torchrun() -> list[str]:
    script = Path(sys.executable).with_name("torchrun")
    return [str(script)] if script.exists() else [sys.executable, "-m", "torch.distributed.run"]


def test_torchrun_two_cpu_ranks_write_one_run(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    out = work / "run"
    env = dict(os.environ)  # CXRBENCH_CACHE: the session's isolated cache (the embedded corpus is built there once)
    env.update(CUDA_VISIBLE_DEVICES="", OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    env.pop("CXRBENCH_ALLOW_DOWNLOAD", None)
    command = [*_torchrun(), "--standalone", "--nproc_per_node", "2", "-m", "cxrbench.cli", "train", "medslip",
               "--config", "demo", *TINY, "--out", str(out), "--device", "cpu", "--no-progress"]
    done = subprocess.run(command, cwd=work, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr

    # rank 0 alone prints, logs and writes; nothing lands outside the run directory
    assert done.stdout.count("final checkpoint:") == 1, done.stdout
    assert done.stderr.count("training images from") == 1, done.stderr
    assert sorted(p.name for p in work.iterdir()) == ["run"]
    folders = {p.name for p in out.iterdir() if p.is_dir()}
    assert "final" in folders and folders <= {"final", "tensorboard"}
    assert {"config.json", "metrics.jsonl", "state.pt"} <= {p.name for p in out.iterdir()}

    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines] == [1, 2]  # once per logged step, not once per rank

    state = torch.load(out / "state.pt", map_location="cpu", weights_only=True)
    assert state["global_step"] == 2 and isinstance(state["rng"], list) and len(state["rng"]) == 2

    from medslip.checkpoint import load_checkpoint

    model = load_checkpoint(out / "final")
    meta = json.loads((out / "final" / "medslip.json").read_text())
    assert meta["extra"]["train"]["global_step"] == 2 and meta["text_encoder"] == "tiny-random"
    assert model.config.d_model == 32
