"""``cxrbench synth``: write a synthetic dataset in its real on-disk format."""

from __future__ import annotations

from pathlib import Path

import typer

from .corpus import DATASETS


def register(app: typer.Typer) -> None:
    """Add the ``synth`` command to ``app``."""

    @app.command("synth")
    def synth(
        dataset: str = typer.Argument(..., help=f"One of: {', '.join(DATASETS)}."),
        out: Path = typer.Option(..., "--out", help="Folder to write (must be new or empty)."),
        n: int = typer.Option(None, "--n", help="Number of images (patients for RSNA, studies for MIMIC and "
                                                "medslip-pretrain); default per dataset."),
        size: int = typer.Option(None, "--size", help="Image height in pixels (default 256, 224 for some)."),
        seed: int = typer.Option(0, "--seed", help="Random seed: the same arguments give the same bytes."),
    ) -> None:
        """Generate a SynthCXR dataset (procedural radiographs, labels, masks, reports) in the real layout."""
        from .corpus import generate

        if dataset not in DATASETS:
            from cxrbench.errors import UserError

            raise UserError(f"unknown dataset {dataset!r}; choose from {', '.join(DATASETS)}")
        generate(dataset, out, n=n, size=size, seed=seed)
