"""Print a diagnose record as a short table."""

from __future__ import annotations

import json
from pathlib import Path


def format_entry(entry: dict) -> str:
    if entry.get("not_applicable"):
        return f"n/a ({entry['not_applicable']})"
    if entry.get("value") is None:
        return "undefined"
    text = f"{entry['value']:.3f}"
    if entry.get("ci_low") is not None and entry.get("ci_high") is not None:
        text += f" [{entry['ci_low']:.3f}, {entry['ci_high']:.3f}]"
    return text


def print_diagnose(path: str | Path) -> None:
    from rich.console import Console
    from rich.table import Table

    record = json.loads(Path(path).read_text(encoding="utf-8"))
    table = Table(title=f"{record['model']['name']} diagnose ({record['task']['dataset']})")
    table.add_column("metric")
    table.add_column("value [95 % CI]")
    for key in sorted(record["summary"]):
        table.add_row(key, format_entry(record["summary"][key]))
    console = Console()
    console.print(table)
    console.print(f"record: {path} ({record['wall_time_s']:.1f} s)")
