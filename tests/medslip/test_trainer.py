"""Pre-training loop: exact resume, DDP consistency, non-finite loss, schedule."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from medslip import MeDSLIP, MeDSLIPConfig
from medslip.pretrain import EpochIndexed, PretrainDataset, ResumableSampler, RunBatchSampler
from medslip.trainer import METRICS_FILE, STATE_FILE, NonFiniteLoss, TrainConfig, learning_rate, train

ROOT = Path(__file__).resolve().parents[2]


def _model():
    torch.manual_seed(0)
    cfg = MeDSLIPConfig(backbone="resnet18", num_layers=1, d_model=32, num_heads=2, dim_feedforward=64,
                        text_width=16)
    return MeDSLIP(cfg, torch.randn(75, 16), torch.randn(51, 16))


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    images = [(rng.random((48, 48)) * 255).astype(np.uint8) for _ in range(16)]
    matrices = rng.choice([-1, 0, 1], size=(16, 51, 75), p=[0.9, 0.06, 0.04]).astype(np.int8)
    return PretrainDataset(images, matrices, 48, "paper")


CFG = TrainConfig(epochs=2, batch_size=4, num_workers=0, checkpoint_every=100, log_every=1, warmup_epochs=0.5)


def _weights(model):
    return [v.clone() for v in model.state_dict().values()]


def test_interrupted_and_resumed_run_equals_uninterrupted(tmp_path, data):
    full = _model()
    result = train(full, data, CFG, tmp_path / "full", progress=False)
    assert result.global_step == 8
    lines = (tmp_path / "full" / METRICS_FILE).read_text().splitlines()
    assert len(lines) == 8 and "loss_cl_pathology" in json.loads(lines[0])

    for stops in ([3], [5, 2]):  # mid-epoch, then across the epoch boundary
        run = tmp_path / f"resumed{len(stops)}"
        first = True
        for stop in stops:
            model = _model()
            train(model, data, CFG, run, resume=not first, progress=False, stop_after=stop)
            first = False
        model = _model()
        train(model, data, CFG, run, resume=True, progress=False)
        for a, b in zip(_weights(full), _weights(model)):
            assert torch.equal(a, b)
    # a different seed gives different weights (the comparison above can fail)
    other = _model()
    train(other, data, TrainConfig(**{**CFG.__dict__, "seed": 1}), tmp_path / "other", progress=False)
    assert any(not torch.equal(a, b) for a, b in zip(_weights(full), _weights(other)))


def test_resume_without_state_is_a_clear_error(tmp_path, data):
    with pytest.raises(FileNotFoundError, match="cannot resume"):
        train(_model(), data, CFG, tmp_path / "none", resume=True, progress=False)


class _NanAfter(MeDSLIP):
    calls = 0

    def compute_loss(self, batch, generator=None):
        out = super().compute_loss(batch, generator)
        type(self).calls += 1
        if type(self).calls > 2:
            out["loss"] = out["loss"] * float("nan")
        return out


@pytest.mark.parametrize("checkpoint_every", [1, 2])
def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(tmp_path, data, checkpoint_every):
    # every=1: the bad step is caught before its own checkpoint; every=2: one step later, by the readout
    _NanAfter.calls = 0
    torch.manual_seed(0)
    model = _NanAfter(MeDSLIPConfig(backbone="resnet18", num_layers=1, d_model=32, num_heads=2,
                                    dim_feedforward=64, text_width=16), torch.randn(75, 16), torch.randn(51, 16))
    cfg = TrainConfig(**{**CFG.__dict__, "checkpoint_every": checkpoint_every})
    with pytest.raises(NonFiniteLoss, match="step 2 "):
        train(model, data, cfg, tmp_path / "nan", progress=False)
    state = torch.load(tmp_path / "nan" / STATE_FILE, weights_only=True)
    assert state["global_step"] == 2
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())


def test_learning_rate_schedule():
    cfg = TrainConfig(epochs=100, warmup_epochs=5, lr=1e-4, warmup_lr=1e-5, min_lr=1e-5)
    assert learning_rate(0, 10, cfg) == pytest.approx(1e-5)
    assert learning_rate(50, 10, cfg) == pytest.approx(1e-4)
    assert learning_rate(25, 10, cfg) == pytest.approx(5.5e-5)
    assert learning_rate(1000, 10, cfg) == pytest.approx(1e-5)
    mid = learning_rate(525, 10, cfg)
    assert mid == pytest.approx(1e-5 + 0.5 * 9e-5, rel=1e-6)


def test_sampler_shards_are_disjoint_and_resumable():
    shards = [list(ResumableSampler(20, 3, seed=4, rank=r, world_size=2)) for r in range(2)]
    assert not set(shards[0]) & set(shards[1]) and len(shards[0]) == 9
    s = ResumableSampler(20, 3, seed=4)
    full = list(s)
    s.set_epoch(0, start_batch=2)
    assert list(s) == full[6:]


def test_run_batch_sampler_walks_epochs_without_straddling_and_resumes():
    sampler = ResumableSampler(10, 3, seed=2)
    batches = list(RunBatchSampler(sampler, epochs=3))
    assert len(batches) == len(RunBatchSampler(sampler, epochs=3)) == 9
    for k, batch in enumerate(batches):
        epochs = {code // 10 for code in batch}
        assert epochs == {k // 3} and len(batch) == 3
    # each epoch is that epoch's ResumableSampler order
    sampler.set_epoch(1)
    assert [c % 10 for b in batches[3:6] for c in b] == list(sampler)[:9]
    resumed = list(RunBatchSampler(ResumableSampler(10, 3, seed=2), epochs=3, start_epoch=1, start_batch=2))
    assert resumed == batches[5:]


def test_epoch_indexed_sets_the_epoch_of_each_item(data):
    wrapped = EpochIndexed(data)
    n = len(data)
    a, b = wrapped[1 * n + 5], wrapped[2 * n + 5]
    data.set_epoch(1)
    assert torch.equal(a["images"], data[5]["images"])
    assert not torch.equal(a["images"], b["images"])  # another epoch, another augmentation


def test_worker_processes_give_the_same_run_as_the_main_process(tmp_path, data):
    """Workers persist across epochs; the epoch of each item still reaches them."""
    main = _model()
    train(main, data, CFG, tmp_path / "main", progress=False)
    workers = _model()
    train(workers, data, TrainConfig(**{**CFG.__dict__, "num_workers": 2}), tmp_path / "workers", progress=False)
    for a, b in zip(_weights(main), _weights(workers)):
        assert torch.equal(a, b)


def test_ddp_two_cpu_processes_give_identical_weights(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29531",
         str(ROOT / "tests" / "medslip" / "ddp_worker.py"), str(tmp_path)],
        capture_output=True, text=True, env=env, timeout=300, cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert ranks[0]["world"] == 2 and ranks[0]["steps"] == ranks[1]["steps"] == 4  # 32 / (2 x 4)
    assert ranks[0]["final"] == ranks[1]["final"]
    assert ranks[0]["final"] != ranks[0]["initial"]
    assert (tmp_path / "run" / STATE_FILE).exists()


def test_gpu_throughput_script_runs_on_cpu_with_tiny_config():
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "gpu" / "pretrain_throughput.py"), "--tiny", "--device", "cpu",
         "--steps", "2", "--warmup", "1", "--batch-size", "4", "--bf16"],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert [r["source"] for r in records] == ["synthetic", "cache"]
    assert all(r["images_per_s"] > 0 and r["config"] == "tiny" and r["steps"] == 2 for r in records)
    assert records[0]["bf16"] is True  # the autocast path, exercised on the CPU


def test_tensorboard_gets_the_logged_scalars(tmp_path, data):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = TrainConfig(**{**CFG.__dict__, "epochs": 1, "log_every": 2})
    result = train(_model(), data, cfg, tmp_path / "tb", progress=False)
    events = EventAccumulator(str(tmp_path / "tb" / "tensorboard"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"loss", "loss_ap", "loss_cl_pathology", "lr", "images_per_s"} <= tags
    logged = events.Scalars("loss")
    assert [e.step for e in logged] == [2, 4]
    by_step = {h["step"]: h["loss"] for h in result.history}
    assert [e.value for e in logged] == pytest.approx([by_step[2], by_step[4]], rel=1e-6)


def test_prepared_gpu_check_script_runs_dry_on_cpu(tmp_path):
    """`DRY_RUN=1 bash benchmarks/gpu/run_checks.sh` runs every step on the CPU: the script is ready for a device."""
    env = dict(os.environ, DRY_RUN="1", PYTHON=sys.executable, OMP_NUM_THREADS="1")
    proc = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu" / "run_checks.sh"), str(tmp_path / "out")],
                          capture_output=True, text=True, env=env, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    smoke = [json.loads(line) for line in (tmp_path / "out" / "cuda_smoke.jsonl").read_text().splitlines()]
    assert [r["ok"] for r in smoke] == [True] and smoke[0]["steps"] == 12
    rates = [json.loads(line) for line in (tmp_path / "out" / "throughput.jsonl").read_text().splitlines()]
    assert [r["source"] for r in rates] == ["synthetic", "cache"] and all(r["images_per_s"] > 0 for r in rates)
    assert "=== summary" in (tmp_path / "out" / "log.txt").read_text()
    profile = (tmp_path / "out" / "profile.txt").read_text()
    assert "wall time per step" in profile and "aten::" in profile


def test_history_is_one_entry_per_logging_interval(tmp_path, data):
    """History (and metrics.jsonl) hold the means over each log_every steps, plus the steps after the last full
    interval: bounded by steps / log_every, and the same numbers as a per-step log."""
    per_step = train(_model(), data, TrainConfig(**{**CFG.__dict__, "epochs": 1, "log_every": 1}), tmp_path / "a",
                     progress=False)
    grouped = train(_model(), data, TrainConfig(**{**CFG.__dict__, "epochs": 1, "log_every": 3}), tmp_path / "b",
                    progress=False)
    steps = [h["step"] for h in per_step.history]
    assert len(steps) == grouped.global_step >= 4 and all(h["steps"] == 1 for h in per_step.history)
    expected_ends = [s for s in steps if s % 3 == 0] + ([steps[-1]] if steps[-1] % 3 else [])
    assert [h["step"] for h in grouped.history] == expected_ends
    assert sum(h["steps"] for h in grouped.history) == len(steps)
    losses = {h["step"]: h["loss"] for h in per_step.history}
    start = 0
    for entry in grouped.history:
        window = [losses[s] for s in steps if start < s <= entry["step"]]
        assert entry["loss"] == pytest.approx(sum(window) / len(window), rel=1e-6)
        start = entry["step"]
    logged = [json.loads(line) for line in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
    assert logged == grouped.history
