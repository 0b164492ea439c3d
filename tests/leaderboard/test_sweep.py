"""Sweep grids: expansion, deterministic sharding that covers the grid exactly once, resumable runs."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

import cxrbench.run
from cxrbench.cli import app
from cxrbench.models.registry import MODELS, ModelEntry
from cxrbench.run import RunOptions
from cxrbench.sweep import (
    Job,
    SweepFailed,
    expand_grid,
    load_grid,
    parse_shard,
    run_sweep,
    shard_jobs,
    shipped_grids,
)
from cxrbench.tasks.specs import TASKS


@pytest.fixture
def two_models(monkeypatch: pytest.MonkeyPatch) -> None:
    """An extra zero-shot-only model, so the grid pairs models with the settings they support."""
    monkeypatch.setitem(MODELS, "zs-only", ModelEntry("zs-only", "test", frozenset({"zs"}), lambda **_: None))


def test_demo_grid_is_shipped_and_loads() -> None:
    assert "demo" in shipped_grids()
    grid = load_grid("demo")
    assert grid.tasks == "all" and {"medslip", "medslip-single-stream", "clip"} <= set(grid.models)
    assert grid.seeds and grid.label_fracs
    assert set(grid.options) <= set(RunOptions.__dataclass_fields__)
    for extra in grid.model_options.values():
        assert set(extra) <= set(RunOptions.__dataclass_fields__)
    # every registered model is in the demo grid, except those that need weights this machine lacks (the zoo's
    # published checkpoints among them)
    from cxrbench.models.registry import MODELS
    from cxrbench.zoo.catalog import load_catalog

    assert set(MODELS) - set(grid.models) - set(load_catalog()) == {"resnet50-imagenet"}


def test_grid_pairs_models_with_supported_settings(two_models: None) -> None:
    jobs = expand_grid("all", "all", [0.1, 1.0], [0, 1])
    assert len(jobs) == len(set(jobs))
    zs_only = {j.task for j in jobs if j.model == "zs-only"}
    assert zs_only == {t.name for t in TASKS.values() if t.setting == "zs"}
    for j in jobs:
        trained = TASKS[j.task].setting in ("ft", "seg")
        assert (j.label_frac is not None) == trained
    medslip = [j for j in jobs if j.model == "medslip"]
    n_trained = sum(TASKS[t].setting in ("ft", "seg") for t in TASKS)
    # trained tasks: 2 fractions x 2 seeds; zero-shot tasks are deterministic: one job, without a seed
    assert len(medslip) == 2 * n_trained * 2 + (len(TASKS) - n_trained)
    assert all((j.seed is None) == (TASKS[j.task].setting in ("zs", "ground")) for j in jobs)


@pytest.mark.parametrize("n", [1, 2, 3, 5, 7])
def test_shards_partition_the_grid_exactly_once(two_models: None, n: int) -> None:
    jobs = expand_grid("all", "all", [0.01, 0.1, 1.0], [0, 1, 2])
    seen: list[Job] = []
    for i in range(n):
        part = shard_jobs(jobs, (i, n))
        assert part == shard_jobs(list(reversed(jobs)), (i, n)), "shards must not depend on the input order"
        seen.extend(part)
    assert sorted(seen, key=Job.sort_key) == jobs
    assert len(seen) == len(set(seen))
    sizes = [len(shard_jobs(jobs, (i, n))) for i in range(n)]
    assert max(sizes) - min(sizes) <= 1


def test_parse_shard() -> None:
    assert parse_shard(None) == (0, 1)
    assert parse_shard("2/4") == (2, 4)
    for bad in ("4/4", "-1/2", "1", "a/b", "0/0"):
        with pytest.raises(ValueError):
            parse_shard(bad)


def test_run_sweep_resumes_with_skip_existing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    calls: list[tuple] = []

    def fake_run(model, task, fracs, seeds, options, adapter=None):
        assert options.skip_existing and not options.overwrite
        calls.append((model, task, fracs[0], seeds[0]))
        return [tmp_path / f"{model}-{task}-{fracs[0]}-{seeds[0]}.json"]

    monkeypatch.setattr(cxrbench.run, "run", fake_run)
    options = RunOptions(out=tmp_path, overwrite=True)
    paths = run_sweep(["medslip"], ["rsna-zs", "siim-seg"], [0.1, 1.0], [0, 1], shard=(1, 2), options=options)
    expected = shard_jobs(expand_grid(["medslip"], ["rsna-zs", "siim-seg"], [0.1, 1.0], [0, 1]), (1, 2))
    assert calls == [(j.model, j.task, j.label_frac, 0 if j.seed is None else j.seed) for j in expected]
    assert len(paths) == len(expected) == 2  # (1 zs job + 4 seg jobs), shard 1 of 2


def test_run_sweep_keeps_going_and_reports_failures(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def flaky_run(model, task, fracs, seeds, options, adapter=None):
        if seeds[0] == 1:
            raise RuntimeError("boom")
        return [tmp_path / f"{task}-{seeds[0]}.json"]

    monkeypatch.setattr(cxrbench.run, "run", flaky_run)
    with pytest.raises(SweepFailed) as info:
        run_sweep(["medslip"], ["rsna-ft"], [1.0], [0, 1, 2], options=RunOptions(out=tmp_path))
    assert len(info.value.paths) == 2 and len(info.value.failures) == 1
    assert "boom" in str(info.value)


def test_sweep_cli_passes_grid_and_overrides(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    seen: dict = {}

    def fake_sweep(models, tasks, label_fracs, seeds, shard=(0, 1), options=None, **_):
        seen.update(models=models, tasks=tasks, label_fracs=label_fracs, seeds=seeds, shard=shard, options=options)
        return []

    import cxrbench.sweep

    monkeypatch.setattr(cxrbench.sweep, "run_sweep", fake_sweep)
    grid = tmp_path / "g.yaml"
    grid.write_text("models: [medslip]\ntasks: all\nlabel_fracs: [0.5]\nseeds: [3]\noptions: {epochs: 1}\n")
    result = CliRunner().invoke(app, ["sweep", "--grid", str(grid), "--tasks", "rsna-zs", "--shard", "1/3",
                                      "--out", str(tmp_path / "r"), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert seen["models"] == ["medslip"] and seen["tasks"] == ["rsna-zs"]
    assert seen["label_fracs"] == [0.5] and seen["seeds"] == [3] and seen["shard"] == (1, 3)
    assert seen["options"].epochs == 1 and seen["options"].out == tmp_path / "r"


def test_bad_grid_keys_are_refused(tmp_path: Path) -> None:
    grid = tmp_path / "g.yaml"
    grid.write_text("models: all\noptions: {epochz: 1}\n")
    with pytest.raises(ValueError, match="unknown options"):
        load_grid(grid)
