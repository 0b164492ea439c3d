"""The ``cxrbench`` command line."""

from __future__ import annotations

from pathlib import Path

import typer
from typer.core import TyperGroup


class _CommandLine(TyperGroup):
    """The root group: every error that reaches it becomes one line on stderr and an exit code
    (:mod:`cxrbench.errors`: 2 for user errors); the traceback only with ``--debug``."""

    def invoke(self, ctx):  # noqa: ANN001 - typer's Context
        from cxrbench.errors import debug_enabled, describe_error, one_line

        from typer._click.exceptions import UsageError

        try:
            return super().invoke(ctx)
        except UsageError as err:  # a bad or missing option of a sub-command: one line too, exit code 2
            if debug_enabled():
                raise
            where = f" (see `{err.ctx.command_path} --help`)" if err.ctx is not None else ""
            typer.echo(f"error: {one_line(err.format_message())}{where}", err=True)
            raise typer.Exit(err.exit_code) from None
        except (typer.Exit, typer.Abort, typer.exceptions.TyperException):  # explicit exits
            raise
        except (Exception, KeyboardInterrupt) as err:  # noqa: BLE001 - the one place errors become messages
            if debug_enabled():
                raise
            code, message = describe_error(err)
            typer.echo(f"error: {message}", err=True)
            raise typer.Exit(code) from None


from cxrbench.methods import METHODS

app = typer.Typer(
    name="cxrbench",
    help="Benchmark harness for chest X-ray vision-language pre-training (MeDSLIP and baselines).",
    no_args_is_help=True,
    add_completion=False,
    cls=_CommandLine,
    pretty_exceptions_enable=False,
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
def main(allow_download: bool = _allow_download_option(),
         debug: bool = typer.Option(False, "--debug", help="show the full traceback of an error instead of its "
                                    "one-line message (also CXRBENCH_DEBUG=1)")) -> None:
    """cxrbench: pre-train, evaluate and compare chest X-ray vision-language models.

    Offline by default: model weights and text encoders are read from local files and caches; give
    --allow-download (here, before the command, or after `run`, `sweep` or `train`) to let cxrbench
    download what is missing. Errors are one line on stderr with exit code 2 for bad input (see
    docs/errors.md); --debug shows the traceback.
    """
    if debug:
        from cxrbench.errors import enable_debug

        enable_debug()
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


def _floats(text: str | None, option: str = "--label-frac") -> list[float | None]:
    """Comma-separated label fractions; a one-line error naming the option and the value otherwise."""
    from cxrbench.errors import UserError

    if not text:
        return [None]
    values: list[float | None] = []
    for part in (x.strip() for x in text.split(",")):
        if not part:
            continue
        try:
            value = float(part)
        except ValueError:
            raise UserError(f"{option} {text}: {part!r} is not a number (label fractions are in (0, 1], "
                            "e.g. 0.01,0.1,1.0)") from None
        if not 0.0 < value <= 1.0:  # also NaN
            raise UserError(f"{option} {text}: {part} is not in (0, 1] (a fraction of the training labels)")
        values.append(value)
    return values or [None]


def _ints(text: str, option: str = "--seeds") -> list[int]:
    from cxrbench.errors import UserError

    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise UserError(f"{option} {text}: expected comma-separated integers, e.g. 0,1,2") from None


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
    workers: int | None = typer.Option(None, "--workers", min=0, help="ft/seg: DataLoader worker processes for "
                                       "the training batches (default: 0 on CPU, up to 8 on a GPU); results do "
                                       "not depend on it"),
    n_boot: int = typer.Option(1000, "--n-boot", help="bootstrap resamples for the 95 % intervals"),
    threshold_on: str = typer.Option("val", "--threshold-on", help="val (protocol) or test (published practice; "
                                     "the record says so and the leaderboard marks it); zs, ft and ground"),
    split_seed: int = typer.Option(0, "--split-seed", help="seed of the splits a dataset does not define (the "
                                   "same for every run seed; recorded)"),
    grounding_postprocess: str = typer.Option("protocol", "--grounding-postprocess",
                                              help="ground: protocol, published (MeDSLIP/MedKLIP: batch-max, "
                                              "nearest upsampling, > 0) or published-anatomy (recorded)"),
    progress: bool = typer.Option(True, "--progress/--no-progress"),
    zero_shot_rule: str | None = typer.Option(None, "--zero-shot-rule", help="zoo models: the zero-shot rule "
                                              "(`cxrbench zoo show NAME` lists them; default: the published one)"),
    use_demo_checkpoint: bool = typer.Option(False, "--use-demo-checkpoint", help="with --data-root and no "
                                             "--checkpoint: evaluate the demo checkpoint (pre-trained on synthetic "
                                             "data) on the real data anyway; refused without this option"),
    allow_download: bool = _allow_download_option(),
) -> None:
    """Evaluate MODEL on TASK; writes one JSON record per (label fraction, seed) and prints the metrics.
    Zero-shot tasks (zs, ground) evaluate a fixed checkpoint: they run once, whatever --seeds says."""
    from cxrbench.errors import UserError
    from cxrbench.report import print_records
    from cxrbench.run import RunOptions, run

    _grant_downloads(allow_download)
    if threshold_on not in ("val", "test"):
        raise UserError(f"--threshold-on {threshold_on}: must be val or test")
    from cxrbench.run import GROUNDING_POSTPROCESS

    if grounding_postprocess not in GROUNDING_POSTPROCESS:
        raise UserError(f"--grounding-postprocess {grounding_postprocess}: must be one of "
                        f"{', '.join(GROUNDING_POSTPROCESS)}")
    options = RunOptions(data_root=data_root, checkpoint=checkpoint, description_file=description_file,
                         text_encoder=text_encoder, image_size=image_size, device=device, out=out,
                         skip_existing=skip_existing, overwrite=overwrite, n_boot=n_boot, threshold_on=threshold_on, split_file=split_file,
                         skip_bad_images=skip_bad_images, linear_probe=linear_probe, epochs=epochs, progress=progress,
                         workers=workers, zero_shot_rule=zero_shot_rule, use_demo_checkpoint=use_demo_checkpoint,
                         split_seed=split_seed, grounding_postprocess=grounding_postprocess)
    paths = run(model, task, _floats(label_frac), _ints(seeds), options)  # errors: one line (see _CommandLine)
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
    use_demo_checkpoint: bool = typer.Option(False, "--use-demo-checkpoint", help="with --data-root: evaluate "
                                             "models without a checkpoint in the grid with their demo checkpoint "
                                             "(pre-trained on synthetic data); refused without this option"),
    allow_download: bool = _allow_download_option(),
    launcher: str = typer.Option("inline", "--launcher", help="where the jobs run: inline (this process, one "
                                 "after the other), local (one submitit subprocess per cell) or slurm (one "
                                 "submitit job per cell, submitted as a Slurm job array)"),
    launcher_folder: Path | None = typer.Option(None, "--launcher-folder", help="submitit's job files and "
                                                "logs (default: <out>/.submitit)"),
    partition: str | None = typer.Option(None, "--partition", help="slurm: partition"),
    account: str | None = typer.Option(None, "--account", help="slurm: account"),
    qos: str | None = typer.Option(None, "--qos", help="slurm: quality of service"),
    gpus: int = typer.Option(0, "--gpus", help="local/slurm: GPUs per job"),
    cpus_per_task: int | None = typer.Option(None, "--cpus-per-task", help="local/slurm: CPUs per job"),
    mem_gb: float | None = typer.Option(None, "--mem-gb", help="local/slurm: memory per job (GB)"),
    time_min: int = typer.Option(240, "--time-min", help="local/slurm: time limit per job (minutes)"),
    array_parallelism: int | None = typer.Option(None, "--array-parallelism", help="slurm: at most this many "
                                                 "array jobs at once (%K); local: cells at once (default 1)"),
    wait: bool | None = typer.Option(None, "--wait/--no-wait", help="wait for the jobs and report failures "
                                     "(default: wait for local, return after submitting for slurm)"),
) -> None:
    """Run a grid of evaluations (models x tasks x label fractions x seeds). Existing records are kept,
    so an interrupted sweep resumes where it stopped; --shard i/n splits the grid across machines by hand,
    --launcher slurm submits one job per cell (submitting again submits only the cells still without a
    record, so failed or timed-out jobs are resubmitted by running the same command)."""
    import dataclasses

    from cxrbench.launchers import LauncherOptions
    from cxrbench.run import RunOptions
    from cxrbench.sweep import SweepFailed, load_grid, parse_shard, run_sweep

    spec = load_grid(grid)  # a bad grid or shard: one line, exit 2 (see _CommandLine)
    part = parse_shard(shard)
    launch_with = LauncherOptions(kind=launcher, folder=launcher_folder, partition=partition, gpus=gpus,
                                  cpus_per_task=cpus_per_task, mem_gb=mem_gb, time_min=time_min,
                                  array_parallelism=array_parallelism, account=account, qos=qos, wait=wait)
    _grant_downloads(allow_download)
    given = {k: v for k, v in (("data_root", data_root), ("device", device)) if v is not None}
    options = dataclasses.replace(RunOptions(), **spec.options)
    options = dataclasses.replace(options, out=out, progress=progress, **given)
    if use_demo_checkpoint:
        options = dataclasses.replace(options, use_demo_checkpoint=True)
    fracs = [f for f in _floats(label_fracs, "--label-fracs") if f is not None] if label_fracs else spec.label_fracs
    try:
        paths = run_sweep(models.split(",") if models else spec.models, tasks.split(",") if tasks else spec.tasks,
                          fracs, _ints(seeds) if seeds else spec.seeds, shard=part, options=options,
                          model_options=spec.model_options, launcher=launch_with)
    except SweepFailed as err:
        from cxrbench.errors import one_line

        typer.echo(str(err), err=True)  # the failed jobs, one per line
        typer.echo(f"error: {one_line(str(err).splitlines()[0])}", err=True)
        raise typer.Exit(1) from None
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
        typer.echo(f"error: --results {results}: results folder not found (run `cxrbench sweep` first, or pass "
                   "--results)", err=True)
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
from cxrbench.zoo.cli import register as _register_zoo  # noqa: E402

_register_zoo(app)

from cxrbench.diagnose.cli import register as _register_diagnose  # noqa: E402

_register_diagnose(app)


if __name__ == "__main__":  # pragma: no cover
    app()
