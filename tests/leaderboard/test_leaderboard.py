"""Leaderboards are a pure function of the result records: regeneration, --check, cells, bold, reported rows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cxrbench.cli import app
from cxrbench.leaderboard import (
    MARKER,
    REPORTED_COLUMNS,
    build_tables,
    check_leaderboard,
    load_records,
    load_reported,
    write_leaderboard,
)
from tests.leaderboard.conftest import full, make_record, sha, write_record

TEXT = (".md", ".csv", ".json")


def _snapshot(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.iterdir()) if p.is_file() and p.suffix in TEXT}


def _section_lines(md: str, title: str) -> list[str]:
    """The table lines of the markdown section whose heading starts with ``title``."""
    block = md.split(f"## {title}", 1)[1].split("\n## ", 1)[0]
    return [ln for ln in block.splitlines() if ln.startswith("|")]


def _row(lines: list[str], label: str) -> list[str]:
    for ln in lines:
        cells = [c.strip() for c in ln.strip("|").split("|")]
        if cells[0] == label:
            return cells
    raise AssertionError(f"no row {label!r} in {lines}")


def test_files_per_table_and_index(results_dir: Path) -> None:
    out = results_dir.parent
    write_leaderboard(results_dir, out)
    for task in ("rsna-zs", "siim-seg"):
        for suffix in (*TEXT, ".png"):
            assert (out / f"{task}{suffix}").is_file()
        md = (out / f"{task}.md").read_text()
        assert md.startswith(MARKER)
        assert f"]({task}.png)" in md
    index = (out / "README.md").read_text()
    assert "[rsna-zs](rsna-zs.md)" in index and "[siim-seg](siim-seg.md)" in index


def test_deleting_a_table_and_regenerating_restores_it_byte_for_byte(results_dir: Path) -> None:
    out = results_dir.parent
    write_leaderboard(results_dir, out)
    before = _snapshot(out)
    for suffix in TEXT:
        (out / f"siim-seg{suffix}").unlink()
    (out / "README.md").unlink()
    write_leaderboard(results_dir, out)
    assert _snapshot(out) == before


def test_output_does_not_depend_on_the_output_path_or_time(results_dir: Path, tmp_path: Path) -> None:
    out = results_dir.parent
    write_leaderboard(results_dir, out)
    png = (out / "siim-seg.png").read_bytes()
    write_leaderboard(results_dir, out)
    assert (out / "siim-seg.png").read_bytes() == png, "PNG must be deterministic on one machine"
    assert b"Software" not in png
    check = check_leaderboard(results_dir, out)
    assert check.ok, check.report


def test_check_fails_with_a_diff_when_a_record_is_edited(results_dir: Path) -> None:
    out = results_dir.parent
    write_leaderboard(results_dir, out)
    assert check_leaderboard(results_dir, out).ok
    path = results_dir / "clip" / "rsna-zs" / "frac-none_seed-none.json"
    record = json.loads(path.read_text())
    record["summary"]["auc"]["value"] = 0.99
    path.write_text(json.dumps(record))
    outcome = check_leaderboard(results_dir, out)
    assert not outcome.ok
    assert "differs:" in outcome.report and "rsna-zs.md" in outcome.report
    assert "+++" in outcome.report and "0.990" in outcome.report

    result = CliRunner().invoke(app, ["leaderboard", "--results", str(results_dir), "--out", str(out), "--check"])
    assert result.exit_code == 1
    assert "@@" in result.output


def test_check_reports_missing_and_extra_tables(results_dir: Path) -> None:
    out = results_dir.parent
    write_leaderboard(results_dir, out)
    (out / "rsna-zs.md").unlink()
    (out / "siim-seg.png").unlink()
    (out / "old-task.csv").write_text("x\n")
    outcome = check_leaderboard(results_dir, out)
    assert not outcome.ok
    assert any(p.startswith("missing:") and p.endswith("rsna-zs.md") for p in outcome.problems)
    assert any(p.startswith("missing:") and p.endswith("siim-seg.png") for p in outcome.problems)
    assert any(p.startswith("extra") and p.endswith("old-task.csv") for p in outcome.problems)


def test_cli_regenerates_and_checks(results_dir: Path) -> None:
    out = results_dir.parent
    runner = CliRunner()
    result = runner.invoke(app, ["leaderboard", "--results", str(results_dir), "--out", str(out)])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["leaderboard", "--results", str(results_dir), "--out", str(out), "--check"])
    assert result.exit_code == 0, result.output


def test_stale_tables_are_removed_when_their_records_go(results_dir: Path) -> None:
    out = results_dir.parent
    (out / "reported.csv").write_text(",".join(REPORTED_COLUMNS) + "\n")
    (out / "notes.md").write_text("hand-written\n")
    write_leaderboard(results_dir, out)
    for p in (results_dir / "medslip" / "rsna-zs").iterdir():
        p.unlink()
    for p in (results_dir / "clip" / "rsna-zs").iterdir():
        p.unlink()
    write_leaderboard(results_dir, out)
    assert not any((out / f"rsna-zs{s}").exists() for s in (*TEXT, ".png"))
    assert (out / "reported.csv").exists() and (out / "notes.md").exists()  # inputs and other files stay
    assert check_leaderboard(results_dir, out).ok


def test_seeds_aggregate_as_mean_std_and_one_seed_keeps_its_ci(results_dir: Path) -> None:
    out = results_dir.parent
    write_leaderboard(results_dir, out)
    md = (out / "siim-seg.md").read_text()
    lines = _section_lines(md, "Dice (all test images)")
    # medslip, fraction 0.1: seeds 0,1,2 -> 0.51, 0.52, 0.53: mean 0.52, sample std 0.01
    assert _row(lines, "medslip")[1] == "**0.520 ± 0.010 (n=3)**"
    assert _row(lines, "medslip")[2] == "**0.610 ± 0.010 (n=3)**"
    # clip, one seed: the record's value and bootstrap interval
    assert _row(lines, "clip")[1] == "0.410 [0.390, 0.430] (n=1)"
    zs = _section_lines((out / "rsna-zs.md").read_text(), "Metrics")
    assert _row(zs, "medslip")[1] == "**0.700 [0.680, 0.720] (n=1)**"  # deterministic: one record, its CI

    data = json.loads((out / "siim-seg.json").read_text())
    cell = next(c for c in data["cells"] if c["row"] == "medslip" and c["metric"] == "mean_dice"
                and c["label_fraction"] == 0.1)
    assert cell["mean"] == pytest.approx(0.52) and cell["std"] == pytest.approx(0.01)
    assert cell["n_seeds"] == 3 and cell["seeds"] == [0, 1, 2] and len(cell["records"]) == 3


def test_undefined_seeds_are_counted_and_left_out(tmp_path: Path) -> None:
    root = tmp_path / "results"
    undefined = {"auc": None, "auprc": None, "f1": None, "accuracy": None}
    write_record(root, make_record("m", "rsna-ft", 0, {**undefined, "auc": 0.8}, label_fraction=1.0))
    write_record(root, make_record("m", "rsna-ft", 1, undefined, label_fraction=1.0))
    write_leaderboard(root, tmp_path)
    md = (tmp_path / "rsna-ft.md").read_text()
    row = [_row(_section_lines(md, t), "m")[1] for t in ("AUC", "AUPRC")]
    assert row[0] == "0.800 [0.780, 0.820] (n=1, 1 undefined)"
    assert row[1] == "undefined (n=0, 2 undefined)"


def test_best_per_column_is_bold_and_ties_are_all_bold(tmp_path: Path) -> None:
    root = tmp_path / "results"
    write_record(root, make_record("a", "rsna-zs", None, {"auc": 0.80, "auprc": 0.5, "f1": 0.30, "accuracy": 0.7}))
    write_record(root, make_record("b", "rsna-zs", None, {"auc": 0.70, "auprc": 0.6, "f1": 0.30, "accuracy": None}))
    write_leaderboard(root, tmp_path)
    lines = _section_lines((tmp_path / "rsna-zs.md").read_text(), "Metrics")
    a, b = _row(lines, "a"), _row(lines, "b")
    assert a[1].startswith("**") and not b[1].startswith("**")  # AUC
    assert b[2].startswith("**") and not a[2].startswith("**")  # AUPRC
    assert a[3].startswith("**") and b[3].startswith("**")  # F1 tie
    assert not a[4].startswith("**")  # accuracy: only one model has a value


def test_reported_rows_are_shown_with_their_source_and_never_bold(results_dir: Path) -> None:
    out = results_dir.parent
    reported = out / "reported.csv"
    reported.write_text(
        ",".join(REPORTED_COLUMNS) + "\n"
        "MedKLIP,rsna-pneumonia,zs,,auc,0.99,\"Paper A, Table 1\",threshold chosen on the test set\n"
        "MedKLIP,siim-acr,seg,0.1,mean_dice,0.7,\"Paper A, Table 4\",\n")
    write_leaderboard(results_dir, out)
    zs = (out / "rsna-zs.md").read_text()
    row = _row(_section_lines(zs, "Metrics"), "MedKLIP (reported) [1]")
    assert row[1] == "0.990" and row[2] == "—"
    assert "1. Paper A, Table 1. Protocol notes: threshold chosen on the test set" in zs
    assert _row(_section_lines(zs, "Metrics"), "medslip")[1].startswith("**")  # best among measured rows
    seg = _section_lines((out / "siim-seg.md").read_text(), "Dice (all test images)")
    assert _row(seg, "MedKLIP (reported) [1]")[1] == "0.700"
    csv_text = (out / "rsna-zs.csv").read_text()
    assert "MedKLIP (reported) [1],MedKLIP,reported,auc,,0.990000" in csv_text
    assert check_leaderboard(results_dir, out).ok  # the input CSV is not an extra table


def test_reported_only_table_and_bad_reported_rows(tmp_path: Path) -> None:
    path = tmp_path / "reported.csv"
    path.write_text(",".join(REPORTED_COLUMNS) + "\nX,covidx-cxr4,zs,,auc,0.75,Paper B,\n")
    tables = build_tables([], load_reported(path))
    assert [t.task for t in tables] == ["covidx-zs"]
    (tmp_path / "results").mkdir()
    write_leaderboard(tmp_path / "results", tmp_path, path)
    assert (tmp_path / "covidx-zs.png").is_file()
    assert "X (reported) [1]" in (tmp_path / "covidx-zs.md").read_text()
    path.write_text(",".join(REPORTED_COLUMNS) + "\nX,covidx-cxr4,zs,,auc,75.0,Paper B,\n")
    with pytest.raises(ValueError, match="fractions, not percentages"):
        load_reported(path)
    path.write_text(",".join(REPORTED_COLUMNS) + "\nX,covidx-cxr4,seg,0.1,mean_dice,0.5,Paper B,\n")
    with pytest.raises(ValueError, match="unknown dataset/setting"):
        load_reported(path)
    line = "X,covidx-cxr4,zs,,auc,0.75,Paper B,\n"
    path.write_text(",".join(REPORTED_COLUMNS) + "\n" + line + line)
    with pytest.raises(ValueError, match="duplicate"):
        load_reported(path)


def test_shipped_reported_file_has_the_documented_columns() -> None:
    path = Path(__file__).resolve().parents[2] / "leaderboards" / "reported.csv"
    header = path.read_text().splitlines()[0]
    assert tuple(header.split(",")) == REPORTED_COLUMNS
    load_reported(path)


def test_every_record_is_traced_with_checkpoint_and_subset(results_dir: Path) -> None:
    out = results_dir.parent
    write_leaderboard(results_dir, out)
    md = (out / "siim-seg.md").read_text()
    records = [r for r in load_records(results_dir, out) if r.task == "siim-seg"]
    assert len(records) == 8
    for r in records:
        assert f"]({r.link})" in md
        assert r.link.startswith("results/")
        assert r.record["model"]["checkpoint_sha256"][:12] in md
        assert r.record["data"]["subset"]["sha256"][:12] in md
    assert sha("ckpt-medslip")[:12] in md


def test_an_invalid_record_is_named(tmp_path: Path) -> None:
    root = tmp_path / "results"
    path = write_record(root, make_record("m", "rsna-zs", None, full("zs", 0.5)))
    record = json.loads(path.read_text())
    del record["summary"]
    path.write_text(json.dumps(record))
    with pytest.raises(ValueError, match="frac-none_seed-none.json"):
        write_leaderboard(root, tmp_path)


def test_a_missing_results_folder_is_an_error_not_an_empty_leaderboard(results_dir: Path, tmp_path: Path) -> None:
    out = results_dir.parent
    write_leaderboard(results_dir, out)
    with pytest.raises(FileNotFoundError):
        write_leaderboard(tmp_path / "typo", out)
    result = CliRunner().invoke(app, ["leaderboard", "--results", str(tmp_path / "typo"), "--out", str(out)])
    assert result.exit_code == 2
    assert check_leaderboard(results_dir, out).ok  # nothing was removed


def test_seeds_from_different_checkpoints_are_refused(results_dir: Path) -> None:
    """A cell averages seeds of one checkpoint; a stale record of another checkpoint must not slip in."""
    path = results_dir / "medslip" / "siim-seg" / "frac-0.1_seed-1.json"
    record = json.loads(path.read_text())
    before = record["model"].get("checkpoint_sha256")
    record["model"]["checkpoint_sha256"] = "f" * 64
    assert before != record["model"]["checkpoint_sha256"]
    path.write_text(json.dumps(record))
    with pytest.raises(ValueError, match="medslip on siim-seg come from 2 different checkpoints"):
        build_tables(load_records(results_dir, results_dir.parent), [])
