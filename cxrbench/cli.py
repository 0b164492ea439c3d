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


def _floats(text: str | None) -> list[float | None]:
    return [None] if not text else [float(x) for x in text.split(",") if x.strip()]


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


@app.command("run")
def run_cmd(
    model: str = typer.Option(..., "--model", "-m", help="model adapter (see `cxrbench models`)"),
    task: str = typer.Option(..., "--task", "-t", help="task <dataset>-<setting> (see `cxrbench tasks`)"),
    label_frac: str | None = typer.Option(None, "--label-frac", help="label fraction(s) of the training split for "
                                          "ft/seg tasks, e.g. 0.01 or 0.01,0.1,1.0 (default 1.0)"),
    seeds: str = typer.Option("0", "--seeds", help="comma-separated seeds, e.g. 0,1,2"),
    data_root: Path | None = typer.Option(None, "--data-root", help="dataset folder (default: embedded SynthCXR)"),
    checkpoint: Path | None = typer.Option(None, "--checkpoint", help="model checkpoint (default: the demo one, "
                                           "trained first if missing)"),
    description_file: Path | None = typer.Option(None, "--description-file",
                                                 help="published pathology description JSON (for a .pth)"),
    text_encoder: str | None = typer.Option(None, "--text-encoder", help="text encoder for a published .pth"),
    device: str | None = typer.Option(None, "--device", help="cpu or cuda (default: cuda when available)"),
    out: Path = typer.Option(Path("results"), "--out", help="results folder"),
    skip_existing: bool = typer.Option(False, "--skip-existing", help="keep records that already exist"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace records that already exist"),
    split_file: Path | None = typer.Option(None, "--split-file", help="test list overriding the test split"),
    skip_bad_images: bool = typer.Option(False, "--skip-bad-images",
                                         help="skip unreadable images (listed in the record) instead of stopping"),
    linear_probe: bool = typer.Option(False, "--linear-probe", help="ft: freeze the encoder, train a linear head"),
    epochs: int = typer.Option(10, "--epochs", help="ft/seg: maximum epochs (early stopping on validation)"),
    n_boot: int = typer.Option(1000, "--n-boot", help="bootstrap resamples for the 95 % intervals"),
    threshold_on: str = typer.Option("val", "--threshold-on", help="val (protocol) or test (published practice; "
                                     "the record says so)"),
    progress: bool = typer.Option(True, "--progress/--no-progress"),
) -> None:
    """Evaluate MODEL on TASK; writes one JSON record per (label fraction, seed) and prints the metrics."""
    from cxrbench.report import print_records
    from cxrbench.run import RunOptions, run

    if threshold_on not in ("val", "test"):
        raise typer.BadParameter("--threshold-on must be val or test")
    options = RunOptions(data_root=data_root, checkpoint=checkpoint, description_file=description_file,
                         text_encoder=text_encoder, device=device, out=out, skip_existing=skip_existing,
                         overwrite=overwrite, n_boot=n_boot, threshold_on=threshold_on, split_file=split_file,
                         skip_bad_images=skip_bad_images, linear_probe=linear_probe, epochs=epochs, progress=progress)
    paths = run(model, task, _floats(label_frac), _ints(seeds), options)
    print_records(paths)


@app.command("tasks")
def tasks_cmd() -> None:
    """List the evaluation tasks with their classes and metrics."""
    from tabulate import tabulate

    from cxrbench.tasks.specs import SETTINGS, TASKS

    rows = [[t.name, t.dataset, SETTINGS[t.setting], ", ".join(t.labels), ", ".join(t.metrics)] for t in TASKS.values()]
    typer.echo(tabulate(rows, headers=["task", "dataset", "setting", "classes", "metrics"]))


@app.command("models")
def models_cmd() -> None:
    """List the registered model adapters and the settings they support."""
    from tabulate import tabulate

    from cxrbench.models.registry import MODELS

    rows = [[m.name, ", ".join(sorted(m.settings)), m.description] for m in MODELS.values()]
    typer.echo(tabulate(rows, headers=["model", "settings", "description"]))


# Sub-commands register themselves here, one explicit import per area.
from cxrbench.synth.cli import register as _register_synth  # noqa: E402

_register_synth(app)
from cxrbench.data.cli import register as _register_data  # noqa: E402

_register_data(app)
from cxrbench.prep import register as _register_prep  # noqa: E402

_register_prep(app)


if __name__ == "__main__":  # pragma: no cover
    app()
