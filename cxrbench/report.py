"""Printing result records as tables."""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console
from rich.table import Table


def fmt(entry: dict | None) -> str:
    """``0.812 [0.790, 0.833]``, or ``undefined``."""
    if not entry or entry.get("value") is None:
        return "undefined"
    text = f"{entry['value']:.3f}"
    if entry.get("ci_low") is not None and entry.get("ci_high") is not None:
        text += f" [{entry['ci_low']:.3f}, {entry['ci_high']:.3f}]"
    return text


def print_records(paths: list[Path], console: Console | None = None) -> None:
    console = console or Console()
    records = [json.loads(Path(p).read_text()) for p in paths]
    if not records:
        return
    metrics = list(dict.fromkeys(m for r in records for m in r["summary"]))
    table = Table(title=f"{records[0]['model']['name']} on {records[0]['task']['name']} (test split, 95 % bootstrap CI)")
    for col in ("label frac", "seed", *metrics):
        table.add_column(col)
    for r in records:
        frac = "-" if r["label_fraction"] is None else f"{r['label_fraction']:g}"
        table.add_row(frac, "-" if r["seed"] is None else str(r["seed"]), *[fmt(r["summary"].get(m)) for m in metrics])
    console.print(table)
    note = records[0]["metrics"].get("empty_mask_convention") if isinstance(records[0]["metrics"], dict) else None
    if note:
        console.print(f"Dice convention: {note}")
