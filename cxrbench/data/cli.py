"""``cxrbench data list`` and ``cxrbench data check DATASET --root DIR [--labels-only] [--json]``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

if TYPE_CHECKING:  # the heavy imports (pandas) wait until a data command runs
    from cxrbench.data.base import CheckReport

__all__ = ["format_report", "register"]

data_app = typer.Typer(help="Dataset adapters: list them, check a dataset folder.", no_args_is_help=True)


def format_report(report: CheckReport) -> str:
    """Human-readable report: counts per split (columns) and class (rows), facts, problems."""
    from tabulate import tabulate

    from cxrbench.data.base import SPLIT_NAMES
    columns = [*SPLIT_NAMES, "all"]
    rows = [[key] + [report.counts.get(c, {}).get(key, 0) for c in columns]
            for key in ("images", "patients", *report.classes)]
    lines = [
        f"{report.dataset} at {report.root}" + (" (labels only)" if report.labels_only else ""),
        f"{report.n_images:,} images, {report.n_patients:,} patients",
        "",
        tabulate(rows, headers=["", *columns], tablefmt="github", intfmt=","),
    ]
    if report.facts:
        lines += ["", "facts:"] + [f"  {k}: {v}" for k, v in report.facts.items()]
    lines.append("")
    if report.ok:
        lines.append("OK: no problems found")
    else:
        lines.append("PROBLEMS:")
        for kind, entry in report.problems.items():
            lines.append(f"  {kind}: {entry['count']:,}")
            lines += [f"    - {example}" for example in entry["examples"]]
    return "\n".join(lines)


@data_app.command("list")
def list_datasets() -> None:
    """List the registered datasets."""
    from tabulate import tabulate

    from cxrbench.data.registry import DATASETS

    rows = [[name, len(adapter.classes), adapter.description] for name, adapter in DATASETS.items()]
    typer.echo(tabulate(rows, headers=["dataset", "classes", "description"], tablefmt="github"))


@data_app.command("check")
def check(
    dataset: Annotated[str, typer.Argument(help="registered dataset name (see `cxrbench data list`)")],
    root: Annotated[Path, typer.Option("--root", help="the dataset folder, as downloaded")],
    labels_only: Annotated[bool, typer.Option("--labels-only", help="check label files only, no images")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print the report as JSON")] = False,
    seed: Annotated[int, typer.Option("--seed", help="seed of the splits the dataset does not define")] = 0,
    decode: Annotated[bool, typer.Option("--decode", help="decode every image (finds truncated files; slower "
                                         "than reading the headers)")] = False,
    path_prefix: Annotated[
        Optional[str], typer.Option("--path-prefix", help="medslip-pretrain: rewrite image paths OLD=NEW")
    ] = None,
) -> None:
    """Validate a dataset folder and print counts per split and class (exit 1 on problems)."""
    from cxrbench.data.base import DatasetLayoutError
    from cxrbench.data.medslip_pretrain import MedslipPretrainAdapter
    from cxrbench.data.registry import get_dataset

    from cxrbench.errors import UserError

    adapter = get_dataset(dataset)  # unknown name: one line listing the known ones, exit 2
    if path_prefix is not None:
        if not isinstance(adapter, MedslipPretrainAdapter) or "=" not in path_prefix:
            raise UserError(f"--path-prefix {path_prefix}: OLD=NEW applies to medslip-pretrain only")
        old, new = path_prefix.split("=", 1)
        adapter = adapter.with_prefix(old, new)
    if not root.is_dir():
        raise UserError(f"--root {root}: not a folder")
    try:
        report = adapter.check(root, labels_only=labels_only, seed=seed, decode=decode)
    except DatasetLayoutError as exc:  # the label files are not the dataset's: nothing to count
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(json.dumps(report.to_dict(), indent=2) if as_json else format_report(report))
    if not report.ok:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add the ``data`` command group to the ``cxrbench`` app."""
    app.add_typer(data_app, name="data")
