"""The ``cxrbench`` command line."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(
    name="cxrbench",
    help="Benchmark harness for chest X-ray vision-language pre-training (MeDSLIP and baselines).",
    no_args_is_help=True,
    add_completion=False,
)


@app.callback()
def main() -> None:
    """cxrbench: pre-train, evaluate and compare chest X-ray vision-language models."""


@app.command("version")
def version() -> None:
    """Print the versions of cxrbench and medslip."""
    import medslip

    import cxrbench

    typer.echo(f"cxrbench {cxrbench.__version__} / medslip {medslip.__version__}")


@app.command("train")
def train_cmd(
    method: str = typer.Argument(..., help="method to pre-train (see `cxrbench train --list`): medslip, ..."),
    config: str = typer.Option("demo", "--config", "-c",
                               help="shipped config name (demo, paper) or a YAML file"),
    set_: list[str] = typer.Option([], "--set", help="override a config value, e.g. --set train.epochs=2"),
    data_root: Path | None = typer.Option(None, "--data-root",
                                          help="pre-training corpus folder (default: embedded SynthCXR)"),
    out: Path | None = typer.Option(None, "--out", help="run directory (default: the demo checkpoint folder "
                                    "for the demo config, else runs/<method>-<config>)"),
    resume: Path | None = typer.Option(None, "--resume", help="continue the run in this directory"),
    device: str | None = typer.Option(None, "--device", help="cpu or cuda (default: cuda when available)"),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="show a progress bar"),
) -> None:
    """Pre-train METHOD. With no --data-root the demo config trains on the embedded synthetic corpus
    and writes the demo checkpoint that `cxrbench run` uses by default. Under torchrun it trains with
    DistributedDataParallel (rank 0 logs and saves)."""
    from cxrbench.train import train_method

    final = train_method(method, config, list(set_), data_root=data_root, out=resume or out,
                         resume=resume is not None, device=device, progress=progress)
    typer.echo(f"final checkpoint: {final}")


# Sub-commands register themselves here, one explicit import per area.
from cxrbench.synth.cli import register as _register_synth  # noqa: E402

_register_synth(app)
from cxrbench.data.cli import register as _register_data  # noqa: E402

_register_data(app)
# [cli-register: prep]


if __name__ == "__main__":  # pragma: no cover
    app()
