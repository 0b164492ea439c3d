"""Protocol v2 in the leaderboard: cells never mix evaluation conditions, deviations are marked, deterministic
tasks show one record with its interval, segmentation cells are bold only above both trivial references."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cxrbench.leaderboard import build_tables, load_records, write_leaderboard
from tests.leaderboard.conftest import REFERENCES, full, make_record, write_record
from tests.leaderboard.test_leaderboard import _row, _section_lines


def _md(root: Path, out: Path, task: str) -> str:
    write_leaderboard(root, out)
    return (out / f"{task}.md").read_text()


def test_trivial_segmentation_predictors_are_never_bold(tmp_path: Path) -> None:
    """Issue 16: resnet50-random was bold at 0.694 Dice, the share of empty test images (it predicts nothing)."""
    root = tmp_path / "results"
    nothing = {m: REFERENCES["predict_nothing"][m] for m in ("mean_dice", "mean_dice_positive")}
    everything = {m: REFERENCES["predict_everything"][m] for m in ("mean_dice", "mean_dice_positive")}
    write_record(root, make_record("empty", "siim-seg", 0, nothing, label_fraction=1.0))
    write_record(root, make_record("full", "siim-seg", 0, everything, label_fraction=1.0))
    write_record(root, make_record("weak", "siim-seg", 0, {"mean_dice": 0.25, "mean_dice_positive": 0.10},
                                   label_fraction=1.0))
    md = _md(root, tmp_path, "siim-seg")
    for title, metric in (("Dice (all test images)", "mean_dice"), ("Dice (positive test images)",
                                                                    "mean_dice_positive")):
        lines = _section_lines(md, title)
        assert not any("**" in ln for ln in lines), lines  # nobody beats both references
        assert _row(lines, "predict nothing (reference)")[1] == f"{nothing[metric]:.3f}"
        assert _row(lines, "predict everything (reference)")[1] == f"{everything[metric]:.3f}"
    # a model above both references on a metric is bold there
    write_record(root, make_record("good", "siim-seg", 0, {"mean_dice": 0.50, "mean_dice_positive": 0.40},
                                   label_fraction=1.0))
    md = _md(root, tmp_path, "siim-seg")
    assert _row(_section_lines(md, "Dice (all test images)"), "good")[1].startswith("**")
    assert not _row(_section_lines(md, "Dice (all test images)"), "empty")[1].startswith("**")


def test_records_under_different_conditions_never_share_a_cell(tmp_path: Path) -> None:
    root = tmp_path / "results"
    write_record(root, make_record("m", "rsna-ft", 0, full("ft", 0.7), label_fraction=1.0))
    write_record(root, make_record("m", "rsna-ft", 1, full("ft", 0.7), label_fraction=1.0, threshold_on="test"))
    with pytest.raises(ValueError, match="different conditions"):
        build_tables(load_records(root, tmp_path), [])
    for changed in (dict(training_mode="linear-probe"), dict(weights="random"), dict(skipped=2),
                    dict(synthetic=False), dict(protocol="cxrbench-eval/1")):
        other = tmp_path / str(len(list(tmp_path.iterdir())))
        write_record(other, make_record("m", "rsna-ft", 0, full("ft", 0.7), label_fraction=1.0))
        write_record(other, make_record("m", "rsna-ft", 1, full("ft", 0.7), label_fraction=1.0, **changed))
        with pytest.raises(ValueError, match="different conditions"):
            build_tables(load_records(other, tmp_path), [])


def test_a_test_threshold_f1_sits_beside_a_validation_f1_only_with_its_marker(tmp_path: Path) -> None:
    root = tmp_path / "results"
    write_record(root, make_record("val-model", "rsna-zs", None, full("zs", 0.6)))
    write_record(root, make_record("test-model", "rsna-zs", None, full("zs", 0.9), threshold_on="test"))
    write_record(root, make_record("probe", "rsna-ft", 0, full("ft", 0.7), label_fraction=1.0,
                                   training_mode="linear-probe"))
    md = _md(root, tmp_path, "rsna-zs")
    lines = _section_lines(md, "Metrics")
    marked = _row(lines, "test-model")[3]
    assert marked.endswith("<sup>a</sup>") and not marked.startswith("**")  # higher, but marked: never bold
    assert "<sup>" not in _row(lines, "val-model")[3] and _row(lines, "val-model")[3].startswith("**")
    assert "<sup>a</sup> F1/accuracy thresholds chosen on the test split" in md
    cells = json.loads((tmp_path / "rsna-zs.json").read_text())["cells"]
    assert any(c["row"] == "test-model" and c["deviations"] for c in cells)
    assert "linear probe" in (tmp_path / "rsna-ft.md").read_text()


def test_deterministic_tasks_never_show_a_spread_over_seeds(tmp_path: Path) -> None:
    """Issue 16: `medslip 0.596 ± 0.000 (n=2)` on nih-zs. v2 has one record; v1 records of several seeds show one
    record with its interval and a marker."""
    root = tmp_path / "results"
    for seed in (0, 1):
        write_record(root, make_record("old", "nih-zs", seed, full("zs", 0.6), protocol="cxrbench-eval/1"))
    write_record(root, make_record("new", "nih-zs", None, full("zs", 0.5)))
    md = _md(root, tmp_path, "nih-zs")
    assert "±" not in "\n".join(_section_lines(md, "Metrics"))
    old = _row(_section_lines(md, "Metrics"), "old")[1]
    assert old.startswith("0.600 [0.580, 0.620] (n=1) <sup>") and "protocol cxrbench-eval/1" in md
    assert _row(_section_lines(md, "Metrics"), "new")[1] == "**0.500 [0.480, 0.520] (n=1)**"  # old is marked
    # two v2 records of a deterministic task are refused
    write_record(root, make_record("new", "nih-zs", 3, full("zs", 0.5)))
    with pytest.raises(ValueError, match="deterministic"):
        build_tables(load_records(root, tmp_path), [])


def test_zoo_models_with_random_weights_are_refused(tmp_path: Path) -> None:
    root = tmp_path / "results"
    record = make_record("biomedclip", "rsna-zs", None, full("zs", 0.5), weights="random")
    record["model"]["zoo"] = {"entry": "biomedclip"}
    write_record(root, record)
    with pytest.raises(ValueError, match="zoo model"):
        build_tables(load_records(root, tmp_path), [])


def test_committed_leaderboard_has_no_zero_spread_for_deterministic_tasks() -> None:
    repo = Path(__file__).resolve().parents[2] / "leaderboards"
    for task in ("nih-zs", "rsna-zs", "siim-zs", "covidx-zs", "nih-ground", "rsna-ground", "siim-ground"):
        path = repo / f"{task}.md"
        if path.exists():
            assert "± 0.000 (n=" not in path.read_text(), task


def test_a_record_without_protocol_counts_as_v1_and_is_marked(tmp_path: Path) -> None:
    root = tmp_path / "results"
    record = make_record("old", "rsna-zs", 0, full("zs", 0.6), protocol="cxrbench-eval/1")
    del record["protocol"]
    write_record(root, record)
    md = _md(root, tmp_path, "rsna-zs")
    assert _row(_section_lines(md, "Metrics"), "old")[1].endswith("<sup>a</sup>")
    assert "<sup>a</sup> protocol cxrbench-eval/1" in md
