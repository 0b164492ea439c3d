"""The ``cxrbench`` command line."""

from __future__ import annotations

from pathlib import Path

import typer

from cxrbench.methods import METHODS

app = typer.Typer(
    name="cxrbench",
    help="Benchmark harness for chest X-ray vision-language pre-training (MeDSLIP and baselines).",
    no_args_is_help=True,
    add_completion=False,
)


ALLOW_DOWNLOAD_HELP = (
    "allow downloading model weights and text encoders that are not on this machine (Hugging Face hub, "
    "open_clip, torchvision ImageNet weights); the same as CXRBENCH_ALLOW_DOWNLOAD=1. Without it (or that "
    "variable) nothing is fetched from the network: weights come from local files and caches only."
)


def _allow_download_option():
    return typer.Option(False, "--allow-download", help=ALLOW_DOWNLOAD_HELP)


def _grant_downloads(allow_download: bool) -> None:
    """``--allow-download``: set the process-wide permission every loader reads (cxrbench.downloads)."""
    if allow_download:
        from cxrbench.downloads import allow_downloads

        allow_downloads()


@app.callback()
def main(allow_download: bool = _allow_download_option()) -> None:
    """cxrbench: pre-train, evaluate and compare chest X-ray vision-language models.

    Offline by default: model weights and text encoders are read from local files and caches; give
    --allow-download (here, before the command, or after `run`, `sweep` or `train`) to let cxrbench
    download what is missing.
    """
    _grant_downloads(allow_download)


@app.command("version")
def version() -> None:
    """Print the versions of cxrbench and medslip."""
    import medslip

    import cxrbench

    typer.echo(f"cxrbench {cxrbench.__version__} / medslip {medslip.__version__}")


@app.command("train")
def train_cmd(
    method: str = typer.Argument(..., help=f"method to pre-train: {', '.join(METHODS)}"),
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
    allow_download: bool = _allow_download_option(),
) -> None:
    """Pre-train METHOD. With no --data-root the demo config trains on the embedded synthetic corpus
    and writes the demo checkpoint that `cxrbench run` uses by default. Under torchrun
    (`torchrun --nproc_per_node N -m cxrbench.cli train ...`) it trains with DistributedDataParallel:
    rank 0 prepares the caches first, logs and saves."""
    from cxrbench.train import end_distributed, is_rank_zero, train_method

    from baselines.clip.model import TextTowerUnavailable
    from medslip.text import TextEncoderUnavailable
    from medslip.trainer import NonFiniteLoss

    _grant_downloads(allow_download)
    try:
        final = train_method(method, config, list(set_), data_root=data_root, out=resume or out,
                             resume=resume is not None, device=device, progress=progress)
    except NonFiniteLoss as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(1) from None
    except (KeyError, ValueError, FileNotFoundError, TextEncoderUnavailable, TextTowerUnavailable) as err:
        # bad method, config key, value or data folder, or a missing text encoder: a message, not a traceback
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        typer.echo(f"error: {message}", err=True)
        raise typer.Exit(2) from None
    if is_rank_zero():
        typer.echo(f"final checkpoint: {final}")
    end_distributed()


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
    image_size: int | None = typer.Option(None, "--image-size", help="evaluated image size (default: the "
                                          "checkpoint's training size; 224 for a published .pth)"),
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
    allow_download: bool = _allow_download_option(),
) -> None:
    """Evaluate MODEL on TASK; writes one JSON record per (label fraction, seed) and prints the metrics."""
    from cxrbench.report import print_records
    from cxrbench.run import RunOptions, run

    _grant_downloads(allow_download)
    if threshold_on not in ("val", "test"):
        raise typer.BadParameter("--threshold-on must be val or test")
    options = RunOptions(data_root=data_root, checkpoint=checkpoint, description_file=description_file,
                         text_encoder=text_encoder, image_size=image_size, device=device, out=out,
                         skip_existing=skip_existing, overwrite=overwrite, n_boot=n_boot, threshold_on=threshold_on, split_file=split_file,
                         skip_bad_images=skip_bad_images, linear_probe=linear_probe, epochs=epochs, progress=progress)
    from cxrbench.models.base import UnsupportedSetting

    try:
        paths = run(model, task, _floats(label_frac), _ints(seeds), options)
    except UnsupportedSetting as err:  # e.g. open-clip ft with a ViT checkpoint
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(2) from None
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


@app.command("sweep")
def sweep_cmd(
    grid: str = typer.Option("demo", "--grid", help="shipped grid name (demo) or a YAML grid file"),
    models: str | None = typer.Option(None, "--models", help="comma-separated models (default: the grid's)"),
    tasks: str | None = typer.Option(None, "--tasks", help="comma-separated tasks (default: the grid's)"),
    label_fracs: str | None = typer.Option(None, "--label-fracs", help="comma-separated label fractions for "
                                           "ft/seg tasks (default: the grid's)"),
    seeds: str | None = typer.Option(None, "--seeds", help="comma-separated seeds (default: the grid's)"),
    shard: str | None = typer.Option(None, "--shard", help="i/n: run only shard i (0 <= i < n) of the grid"),
    out: Path = typer.Option(Path("leaderboards/results"), "--out", help="results folder"),
    data_root: Path | None = typer.Option(None, "--data-root", help="dataset folder (default: embedded SynthCXR)"),
    device: str | None = typer.Option(None, "--device", help="cpu or cuda (default: cuda when available)"),
    progress: bool = typer.Option(True, "--progress/--no-progress"),
    allow_download: bool = _allow_download_option(),
) -> None:
    """Run a grid of evaluations (models x tasks x label fractions x seeds). Existing records are kept,
    so an interrupted sweep resumes where it stopped; --shard i/n splits the grid across machines."""
    import dataclasses

    from cxrbench.run import RunOptions
    from cxrbench.sweep import SweepFailed, load_grid, parse_shard, run_sweep

    try:
        spec = load_grid(grid)
        part = parse_shard(shard)
    except (FileNotFoundError, ValueError) as err:
        raise typer.BadParameter(str(err)) from None
    _grant_downloads(allow_download)
    given = {k: v for k, v in (("data_root", data_root), ("device", device)) if v is not None}
    options = dataclasses.replace(RunOptions(), **spec.options)
    options = dataclasses.replace(options, out=out, progress=progress, **given)
    try:
        paths = run_sweep(models.split(",") if models else spec.models, tasks.split(",") if tasks else spec.tasks,
                          [float(f) for f in label_fracs.split(",")] if label_fracs else spec.label_fracs,
                          _ints(seeds) if seeds else spec.seeds, shard=part, options=options,
                          model_options=spec.model_options)
    except SweepFailed as err:
        typer.echo(str(err), err=True)
        raise typer.Exit(1) from None
    except KeyError as err:  # unknown model or task name
        raise typer.BadParameter(str(err)) from None
    typer.echo(f"{len(paths)} record(s) under {out}")


@app.command("leaderboard")
def leaderboard_cmd(
    results: Path = typer.Option(Path("leaderboards/results"), "--results", help="folder of result records"),
    out: Path = typer.Option(Path("leaderboards"), "--out", help="folder of the generated tables"),
    reported: Path | None = typer.Option(None, "--reported", help="reported-numbers CSV "
                                         "(default: <out>/reported.csv when it exists)"),
    check: bool = typer.Option(False, "--check", help="compare the files in --out with what the records give; "
                               "print a diff and exit 1 on any difference"),
) -> None:
    """Build the leaderboard (markdown, CSV, JSON, PNG per task and an index) from the result records."""
    from cxrbench.leaderboard import check_leaderboard, write_leaderboard

    if not results.is_dir():
        typer.echo(f"results folder not found: {results} (run `cxrbench sweep` first, or pass --results)", err=True)
        raise typer.Exit(2)
    if check:
        outcome = check_leaderboard(results, out, reported)
        if not outcome.ok:
            typer.echo(outcome.report)
            typer.echo(f"leaderboard out of date: run `cxrbench leaderboard --results {results} --out {out}`",
                       err=True)
            raise typer.Exit(1)
        typer.echo(f"leaderboard up to date: {out}")
        return
    written = write_leaderboard(results, out, reported)
    typer.echo(f"wrote {len(written)} file(s) to {out}")


# Sub-commands register themselves here, one explicit import per area.
from cxrbench.synth.cli import register as _register_synth  # noqa: E402

_register_synth(app)
from cxrbench.data.cli import register as _register_data  # noqa: E402

_register_data(app)
from cxrbench.prep import register as _register_prep  # noqa: E402

_register_prep(app)
from cxrbench.diagnose.cli import register as _register_diagnose  # noqa: E402

_register_diagnose(app)


if __name__ == "__main__":  # pragma: no cover
    app()
