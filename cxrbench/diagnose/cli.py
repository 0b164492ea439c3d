"""``cxrbench diagnose``: disentanglement diagnostics of one model (``docs/diagnostics.md``)."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    """Add the ``diagnose`` command to ``app``."""

    @app.command("diagnose")
    def diagnose(
        model: str = typer.Option(..., "--model", "-m", help="model adapter (see `cxrbench models`)"),
        checkpoint: Path | None = typer.Option(None, "--checkpoint", help="model checkpoint (default: the demo "
                                               "one, trained first if missing)"),
        data_root: Path | None = typer.Option(None, "--data-root", help="real data with boxes (an NIH "
                                              "ChestX-ray14 or RSNA Pneumonia folder); default: the SynthCXR "
                                              "counterfactual set, generated in memory"),
        n: int | None = typer.Option(None, "--n", help="base cases of the counterfactual set (5 renders each; "
                                     "default 48)"),
        size: int | None = typer.Option(None, "--size", help="render size of the counterfactual set (default 256)"),
        seed: int = typer.Option(0, "--seed", help="seed of the counterfactual set, the probe split and the "
                                 "bootstrap"),
        out: Path = typer.Option(Path("results"), "--out", help="results folder"),
        n_boot: int = typer.Option(1000, "--n-boot", help="bootstrap resamples for the 95 % intervals"),
        description_file: Path | None = typer.Option(None, "--description-file",
                                                     help="published pathology description JSON (for a .pth)"),
        text_encoder: str | None = typer.Option(None, "--text-encoder", help="text encoder for a published .pth"),
        image_size: int | None = typer.Option(None, "--image-size", help="evaluated image size (default: the "
                                              "checkpoint's)"),
        device: str | None = typer.Option(None, "--device", help="cpu or cuda (default: cuda when available)"),
        overwrite: bool = typer.Option(False, "--overwrite", help="replace the record if it exists"),
        progress: bool = typer.Option(True, "--progress/--no-progress"),
    ) -> None:
        """Diagnose MODEL: location invariance of "what", location sensitivity of "where", probe decodability
        per stream and anatomy grounding, on SynthCXR counterfactuals (or, with --data-root, the parts real
        boxes allow). Writes one record: <out>/<model>/diagnose/<source>_seed-<seed>.json."""
        from cxrbench.diagnose import DEFAULT_N, DEFAULT_SIZE, DiagnoseOptions, run_diagnose
        from cxrbench.diagnose.report import print_diagnose
        from cxrbench.models.base import UnsupportedSetting
        from cxrbench.models.registry import MODELS

        if model not in MODELS:
            typer.echo(f"error: unknown model {model!r}; registered: {', '.join(sorted(MODELS))}", err=True)
            raise typer.Exit(2)
        if (n is not None and n < 5) or (size is not None and size < 64) or n_boot < 1:
            typer.echo("error: need --n >= 5, --size >= 64 and --n-boot >= 1", err=True)
            raise typer.Exit(2)
        if data_root is not None and not data_root.is_dir():
            typer.echo(f"error: --data-root {data_root} is not a folder", err=True)
            raise typer.Exit(2)
        options = DiagnoseOptions(checkpoint=checkpoint, data_root=data_root, n=n or DEFAULT_N,
                                  size=size or DEFAULT_SIZE, seed=seed, out=out, n_boot=n_boot, device=device,
                                  overwrite=overwrite, description_file=description_file, text_encoder=text_encoder,
                                  image_size=image_size, progress=progress)
        try:
            path = run_diagnose(model, options)
        except (FileExistsError, FileNotFoundError, UnsupportedSetting) as err:
            typer.echo(f"error: {err}", err=True)
            raise typer.Exit(2) from None
        except ValueError as err:
            typer.echo(f"error: {err}", err=True)
            raise typer.Exit(2) from None
        print_diagnose(path)
