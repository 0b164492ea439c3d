"""`cxrbench train`: the command on the embedded corpus, configs, overrides, resume."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from cxrbench.cli import app
from cxrbench.config import apply_overrides, load_config, shipped_configs

TINY = ["--set", "model.d_model=32", "--set", "model.num_layers=1", "--set", "model.num_heads=2",
        "--set", "model.dim_feedforward=64", "--set", "data.image_size=64", "--set", "text_encoder=tiny-random",
        "--set", "train.batch_size=8", "--set", "train.max_steps=6", "--set", "train.log_every=1"]


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CXRBENCH_CACHE", str(tmp_path / "cache"))


def test_shipped_configs_and_overrides():
    assert {"demo", "paper"} <= set(shipped_configs("medslip"))
    paper = load_config("medslip", "paper")
    assert paper["model"]["backbone"] == "resnet50" and paper["train"]["batch_size"] == 64
    assert paper["train"]["lr"] == 1e-4 and paper["train"]["weight_decay"] == 0.02
    assert paper["data"]["image_size"] == 224 and paper["text_encoder"] == "emilyalsentzer/Bio_ClinicalBERT"
    changed = apply_overrides(paper, ["train.epochs=2", "data.path_prefix=[/old, /new]"])
    assert changed["train"]["epochs"] == 2 and changed["data"]["path_prefix"] == ["/old", "/new"]
    assert paper["train"]["epochs"] == 100  # the original is not modified
    with pytest.raises(KeyError, match="unknown key"):
        apply_overrides(paper, ["train.epochz=2"])


def test_train_command_on_embedded_corpus_then_resume(tmp_path):
    runner = CliRunner()
    out = tmp_path / "run"
    result = runner.invoke(app, ["train", "medslip", *TINY, "--set", "train.checkpoint_every=2",
                                 "--out", str(out), "--no-progress"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert (out / "final" / "model.safetensors").exists() and (out / "state.pt").exists()
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines] == [1, 2, 3, 4, 5, 6]
    meta = json.loads((out / "final" / "medslip.json").read_text())
    assert meta["text_encoder"] == "tiny-random" and meta["extra"]["train"]["global_step"] == 6
    # resuming uses the run's own configuration; a finished run does no further step
    again = runner.invoke(app, ["train", "medslip", "--resume", str(out), "--no-progress"])
    assert again.exit_code == 0, again.output + repr(again.exception)
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 6
    # extending it continues from step 6
    more = runner.invoke(app, ["train", "medslip", "--resume", str(out), "--set", "train.max_steps=8",
                               "--no-progress"])
    assert more.exit_code == 0, more.output + repr(more.exception)
    steps = [json.loads(x)["step"] for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5, 6, 7, 8]


def test_unknown_method_is_a_clear_error():
    result = CliRunner().invoke(app, ["train", "nonexistent"])
    assert result.exit_code == 2 and "unknown method" in result.output
    bad_key = CliRunner().invoke(app, ["train", "medslip", "--set", "train.epoch=2"])
    assert bad_key.exit_code == 2 and "unknown key 'epoch'" in bad_key.output and "Traceback" not in bad_key.output


@pytest.mark.slow
def test_demo_training_loss_falls_and_run_uses_the_checkpoint(tmp_path):
    """Acceptance: the demo config trains on the embedded corpus (a few minutes on 2 cores)."""
    from cxrbench.train import demo_checkpoint, train_method

    final = train_method("medslip", "demo", progress=False)
    assert final == demo_checkpoint("medslip")
    meta = json.loads((final / "medslip.json").read_text())
    first, last = meta["extra"]["train"]["first_losses"], meta["extra"]["train"]["last_losses"]
    assert sum(last) / len(last) < 0.5 * sum(first) / len(first)
    result = CliRunner().invoke(app, ["run", "--model", "medslip", "--task", "rsna-zs", "--out",
                                      str(tmp_path / "res"), "--n-boot", "50", "--no-progress"])
    assert result.exit_code == 0, result.output
    record = json.loads(next((tmp_path / "res").rglob("*.json")).read_text())
    assert record["model"]["checkpoint"] == str(final)


def test_paper_config_on_mimic_layout_after_prep(tmp_path):
    """The user's real-data path: MIMIC-CXR-JPG layout -> `prep mimic` -> `train --config paper --data-root`."""
    runner = CliRunner()
    mimic, prep, out = tmp_path / "mimic", tmp_path / "prep", tmp_path / "run"
    made = runner.invoke(app, ["synth", "mimic-cxr", "--out", str(mimic), "--n", "16", "--size", "64"])
    assert made.exit_code == 0, made.output
    prepped = runner.invoke(app, ["prep", "mimic", "--root", str(mimic), "--out", str(prep)])
    assert prepped.exit_code == 0, prepped.output
    n_train = len(json.loads((prep / "train.json").read_text()))
    result = runner.invoke(app, ["train", "medslip", "--config", "paper", "--data-root", str(prep), *TINY,
                                 "--set", "model.backbone=resnet18", "--set", "train.batch_size=4",
                                 "--set", "train.max_steps=2", "--set", "train.num_workers=0",
                                 "--out", str(out), "--no-progress"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    stored = json.loads((out / "config.json").read_text())
    assert stored["n_train"] == n_train > 0 and stored["data_root"] == str(prep)
    assert stored["config"]["train"]["epochs"] == 100 and stored["config"]["data"]["augment"] == "paper"
    meta = json.loads((out / "final" / "medslip.json").read_text())
    assert meta["extra"]["train"]["global_step"] == 2


def test_mimic_root_without_prep_is_a_clear_error(tmp_path):
    result = CliRunner().invoke(app, ["train", "medslip", "--config", "paper", "--set", "data.source=mimic-cxr",
                                      "--data-root", str(tmp_path), "--no-progress"])
    assert result.exit_code == 2 and "error: MIMIC-CXR is read through" in result.output
    assert "cxrbench prep mimic" in result.output


def test_numbers_in_scientific_notation_and_bad_types():
    config = apply_overrides(load_config("medslip", "demo"), ["train.lr=1e-3", "train.min_lr=2E-6"])
    assert config["train"]["lr"] == 1e-3 and config["train"]["min_lr"] == 2e-6  # YAML 1.1 would give strings
    runner = CliRunner()
    for bad, message in (("train.lr=fast", "train.lr must be a number"),
                         ("train.epochs=2.5", "train.epochs must be a whole number"),
                         ("train.compile=1", "train.compile must be true or false")):
        result = runner.invoke(app, ["train", "medslip", "--set", bad, "--no-progress"])
        assert result.exit_code == 2 and message in result.output, (bad, result.output)


def test_non_finite_loss_stops_the_command_with_exit_1(tmp_path):
    out = tmp_path / "nan"
    result = CliRunner().invoke(app, ["train", "medslip", *TINY, "--set", "train.lr=1e30", "--set", "train.min_lr=1e30",
                                      "--set", "train.warmup_epochs=0", "--out", str(out), "--no-progress"])
    assert result.exit_code == 1 and "error: loss became nan" in result.output
    assert not (out / "final").exists() and not (out / "state.pt").exists()
