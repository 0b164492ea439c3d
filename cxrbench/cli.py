"""The ``cxrbench`` command line."""

from __future__ import annotations

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


# Sub-commands register themselves here, one explicit import per area.
from cxrbench.synth.cli import register as _register_synth  # noqa: E402

_register_synth(app)
from cxrbench.data.cli import register as _register_data  # noqa: E402

_register_data(app)
# [cli-register: prep]


if __name__ == "__main__":  # pragma: no cover
    app()
