"""Cached default corpora and the CLI."""

from __future__ import annotations

from typer.testing import CliRunner

from cxrbench.cli import app
from cxrbench.synth import default_root


def test_default_root_is_generated_once(tmp_path, monkeypatch):
    monkeypatch.setenv("CXRBENCH_CACHE", str(tmp_path / "cache"))
    root = default_root("rsna-pneumonia", n=6, size=64, progress=False)
    assert (root / "stage_2_train_labels.csv").is_file()
    assert root.parent == tmp_path / "cache" / "synth" and root.name.startswith("rsna-pneumonia-v")
    stamp = (root / "synthcxr_manifest.json").stat().st_mtime_ns
    assert default_root("rsna-pneumonia", n=6, size=64, progress=False) == root
    assert (root / "synthcxr_manifest.json").stat().st_mtime_ns == stamp
    assert [p.name for p in root.parent.iterdir()] == [root.name]  # no temporary folder left behind
    assert default_root("rsna-pneumonia", n=7, size=64, progress=False) != root


def test_cli_synth(tmp_path):
    result = CliRunner().invoke(app, ["synth", "covidx-cxr4", "--out", str(tmp_path / "c"), "--n", "5",
                                      "--size", "64", "--seed", "2"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "c" / "train.txt").is_file()
    bad = CliRunner().invoke(app, ["synth", "nope", "--out", str(tmp_path / "d")])
    assert bad.exit_code != 0
