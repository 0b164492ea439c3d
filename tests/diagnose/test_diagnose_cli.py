"""`cxrbench diagnose` end to end on tiny checkpoints: one valid record, and the diagnose leaderboard table."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from cxrbench.cli import app
from cxrbench.diagnose import record_path, validate_diagnose_record

ARGS = ["--n", "10", "--size", "96", "--n-boot", "20", "--no-progress"]


def test_diagnose_medslip_writes_one_valid_record_and_a_table(tmp_path, tiny_medslip):
    from cxrbench.leaderboard import check_leaderboard, write_leaderboard

    out = tmp_path / "results"
    runner = CliRunner()
    result = runner.invoke(app, ["diagnose", "--model", "medslip", "--checkpoint", str(tiny_medslip),
                                 "--out", str(out), *ARGS])
    assert result.exit_code == 0, result.output
    path = record_path(out, "medslip", "synthcxr", 0)
    record = json.loads(path.read_text())
    validate_diagnose_record(record)
    assert record["model"]["checkpoint_sha256"] and len(record["model"]["checkpoint_sha256"]) == 64
    assert record["data"]["splits"]["cases"]["n_cases"] == 10
    assert set(record["metrics"]["streams"]) == {"pathology", "anatomy"}
    for key in ("invariance_ratio", "pointing_game.pathology", "map_follow.pathology", "anatomy_score_follow",
                "anatomy_pointing_game", "probe_class.pathology", "probe_side.anatomy", "probe_zone.anatomy"):
        assert key in record["summary"] and not record["summary"][key].get("not_applicable"), key
    assert record["summary"]["anatomy_pointing_game"]["value"] is not None
    # the anatomy stream has no class maps: said, not skipped
    assert "no class maps" in record["not_applicable"]["pointing_game.anatomy"]
    # the same command again refuses to overwrite (exit code 2, one line)
    again = runner.invoke(app, ["diagnose", "--model", "medslip", "--checkpoint", str(tiny_medslip),
                                "--out", str(out), *ARGS])
    assert again.exit_code == 2 and "exists" in again.output

    board = tmp_path / "board"
    write_leaderboard(out, board)
    table = (board / "diagnose.md").read_text()
    assert "| medslip " in table and "## synthcxr-counterfactual" in table
    assert (board / "diagnose.png").is_file() and "diagnose.md" in (board / "README.md").read_text()
    assert check_leaderboard(out, board).ok
    (board / "diagnose.md").write_text(table.replace("| medslip ", "| edited "))
    assert not check_leaderboard(out, board).ok


@pytest.mark.slow
def test_diagnose_single_stream_says_what_it_lacks(tmp_path, tiny_single_stream):
    from cxrbench.leaderboard import write_leaderboard

    out = tmp_path / "results"
    result = CliRunner().invoke(app, ["diagnose", "--model", "medslip-single-stream", "--checkpoint",
                                      str(tiny_single_stream), "--out", str(out), *ARGS])
    assert result.exit_code == 0, result.output
    single = json.loads(record_path(out, "medslip-single-stream", "synthcxr", 0).read_text())
    assert set(single["metrics"]["streams"]) == {"pathology"}
    assert "no anatomy queries" in single["not_applicable"]["anatomy_score_follow"]
    write_leaderboard(out, tmp_path / "board")
    table = (tmp_path / "board" / "diagnose.md").read_text()
    assert "| medslip-single-stream " in table and "no where stream" in table


def test_bad_input_is_one_line_and_exit_code_2(tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["diagnose", "--model", "nope", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "unknown model" in result.output
    result = runner.invoke(app, ["diagnose", "--model", "medslip", "--data-root", str(tmp_path / "missing")])
    assert result.exit_code == 2 and "not a folder" in result.output
    (tmp_path / "empty").mkdir()
    result = runner.invoke(app, ["diagnose", "--model", "medslip", "--data-root", str(tmp_path / "empty"),
                                 "--out", str(tmp_path)])
    assert result.exit_code == 2 and "diagnose needs boxes" in result.output
