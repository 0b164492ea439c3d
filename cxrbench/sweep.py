"""``cxrbench sweep``: run a grid of (model, task, label fraction, seed) evaluations.

A grid is a small YAML file (shipped ones live in ``cxrbench/configs/sweeps/``)::

    models: all              # or a list of registered model names
    tasks: all               # or a list of task names
    label_fracs: [0.1, 1.0]  # used by ft/seg tasks; zero-shot tasks run once without a fraction
    seeds: [0, 1]            # used by ft/seg tasks; zero-shot tasks are deterministic and run once
    options:                 # RunOptions fields (epochs, n_boot, batch_size, ...)
      epochs: 2

The grid expands to a sorted list of jobs; a model is paired only with the tasks whose setting it supports.
Where the settings depend on the checkpoint (``open-clip``: ground for RN and ViT towers, ft / seg for RN
towers), a job whose setting the loaded checkpoint lacks is skipped with a message, not counted as a failure.
Sweeps are resumable: every job calls :func:`cxrbench.run.run` with ``skip_existing=True`` and records are
written atomically, so an interrupted sweep started again skips what is done. ``--shard i/n`` runs job
``k`` of the sorted list when ``k % n == i`` (``0 <= i < n``): the shards of one grid partition it exactly,
whatever machine runs them. ``--launcher local|slurm`` hands each cell to submitit instead of running it in
this process (:mod:`cxrbench.launchers`): subprocesses here, or one Slurm job array.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from rich.console import Console

from cxrbench.config import load_yaml
from cxrbench.models.base import UnsupportedSetting
from cxrbench.run import TRAINED, RunOptions, run_seeds

if TYPE_CHECKING:
    from cxrbench.launchers import LauncherOptions

#: Folder of the shipped grids, inside the package.
SWEEP_CONFIG_DIR = "sweeps"


@dataclass(frozen=True)
class Job:
    """One evaluation: a result record ``<model>/<task>/frac-<f>_seed-<s>.json``.

    ``label_frac`` is ``None`` for zero-shot tasks (zs, ground); so is ``seed``: they evaluate a fixed checkpoint,
    so they run once whatever seeds the grid lists (protocol v2).
    """

    model: str
    task: str
    label_frac: float | None
    seed: int | None

    def sort_key(self) -> tuple[str, str, float, int]:
        return (self.model, self.task, -1.0 if self.label_frac is None else self.label_frac,
                -1 if self.seed is None else self.seed)

    def __str__(self) -> str:
        frac = "-" if self.label_frac is None else f"{self.label_frac:g}"
        seed = "-" if self.seed is None else self.seed
        return f"{self.model} / {self.task} / frac {frac} / seed {seed}"


@dataclass
class SweepGrid:
    """A parsed grid file. ``models``/``tasks`` may be ``"all"`` (resolved against the registries)."""

    models: list[str] | str = "all"
    tasks: list[str] | str = "all"
    label_fracs: list[float] = field(default_factory=lambda: [1.0])
    seeds: list[int] = field(default_factory=lambda: [0])
    options: dict[str, Any] = field(default_factory=dict)
    #: per-model RunOptions overrides, e.g. ``{"open-clip": {"checkpoint": "RN50:random"}}``
    model_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    source: str = ""


class SweepFailed(RuntimeError):
    """Some jobs of a sweep raised; ``paths`` holds the records of the others, ``failures`` (job, error)."""

    def __init__(self, paths: list[Path], failures: list[tuple[Job, str]]) -> None:
        self.paths = paths
        self.failures = failures
        lines = "\n".join(f"  {job}: {err}" for job, err in failures)
        super().__init__(f"{len(failures)} sweep job(s) failed:\n{lines}")


def shipped_grids() -> list[str]:
    """Names of the grids shipped in ``cxrbench/configs/sweeps``."""
    folder = resources.files("cxrbench") / "configs" / SWEEP_CONFIG_DIR
    if not folder.is_dir():
        return []
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def load_grid(name_or_path: str | Path) -> SweepGrid:
    """A shipped grid by name (``demo``) or a YAML file by path."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.exists():
        if not path.exists():
            raise FileNotFoundError(f"grid file not found: {path}")
        text, source = path.read_text(encoding="utf-8"), str(path)
    else:
        resource = resources.files("cxrbench") / "configs" / SWEEP_CONFIG_DIR / f"{name_or_path}.yaml"
        if not resource.is_file():
            known = ", ".join(shipped_grids()) or "none"
            raise FileNotFoundError(f"no grid {name_or_path!r} (shipped: {known}; or give a YAML path)")
        text, source = resource.read_text(encoding="utf-8"), str(name_or_path)
    data = load_yaml(text) or {}
    if not isinstance(data, dict):
        raise ValueError(f"grid {source}: expected a mapping at the top level")
    unknown = set(data) - {"models", "tasks", "label_fracs", "seeds", "options", "model_options", "description"}
    if unknown:
        raise ValueError(f"grid {source}: unknown keys {sorted(unknown)}")
    options = data.get("options") or {}
    known_fields = {f.name for f in dataclasses.fields(RunOptions)}
    model_options = data.get("model_options") or {}
    for extra in [options, *model_options.values()]:
        bad = set(extra) - known_fields
        if bad:
            raise ValueError(f"grid {source}: unknown options {sorted(bad)} (RunOptions fields: {sorted(known_fields)})")
    return SweepGrid(models=_names(data.get("models", "all")), tasks=_names(data.get("tasks", "all")),
                     label_fracs=[float(f) for f in data.get("label_fracs", [1.0])],
                     seeds=[int(s) for s in data.get("seeds", [0])], options=dict(options),
                     model_options={str(k): dict(v) for k, v in model_options.items()}, source=source)


def _names(value: Any) -> list[str] | str:
    if value in (None, "all"):
        return "all"
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    return [str(v) for v in value]


def expand_grid(models: Sequence[str] | str, tasks: Sequence[str] | str, label_fracs: Sequence[float],
                seeds: Sequence[int]) -> list[Job]:
    """All jobs of a grid, sorted; each model only with tasks whose setting it supports.

    Zero-shot tasks (deterministic) get one job with ``label_frac=None`` and ``seed=None``; ft/seg tasks one per
    (fraction, seed).
    Unknown model or task names raise ``KeyError``.
    """
    from cxrbench.data.subsets import validate_fraction
    from cxrbench.models.registry import MODELS, get_model
    from cxrbench.tasks.specs import TASKS, get_task

    model_names = sorted(MODELS) if models == "all" else sorted(set(models))
    task_names = sorted(TASKS) if tasks == "all" else sorted(set(tasks))
    fracs = sorted({float(f) for f in label_fracs})
    for f in fracs:
        validate_fraction(f)
    seed_list = sorted({int(s) for s in seeds})
    jobs: set[Job] = set()
    for m in model_names:
        entry = get_model(m)
        for t in task_names:
            spec = get_task(t)
            if spec.setting not in entry.settings:
                continue
            for f in (fracs if spec.setting in TRAINED else [None]):
                for s in run_seeds(spec.setting, seed_list):
                    jobs.add(Job(m, t, f, s))
    return sorted(jobs, key=Job.sort_key)


def parse_shard(text: str | None) -> tuple[int, int]:
    """``"i/n"`` -> ``(i, n)`` with ``0 <= i < n``; ``None`` -> ``(0, 1)`` (everything)."""
    if not text:
        return (0, 1)
    try:
        i_text, n_text = text.split("/")
        i, n = int(i_text), int(n_text)
    except ValueError:
        raise ValueError(f"--shard must look like i/n (e.g. 0/4), got {text!r}") from None
    if n < 1 or not 0 <= i < n:
        raise ValueError(f"--shard {text}: need n >= 1 and 0 <= i < n (shards are numbered from 0)")
    return (i, n)


def shard_jobs(jobs: Sequence[Job], shard: tuple[int, int] = (0, 1)) -> list[Job]:
    """The jobs of shard ``i`` of ``n``: positions ``k`` of the sorted job list with ``k % n == i``."""
    i, n = shard
    if n < 1 or not 0 <= i < n:
        raise ValueError(f"invalid shard {i}/{n}: need n >= 1 and 0 <= i < n")
    ordered = sorted(jobs, key=Job.sort_key)
    return [job for k, job in enumerate(ordered) if k % n == i]


def job_options_for(options: RunOptions, model_options: dict[str, dict[str, Any]] | None, job: Job) -> RunOptions:
    """The run options of one job: the sweep's, with the grid's overrides for the job's model."""
    extra = (model_options or {}).get(job.model, {})
    job_options = dataclasses.replace(options, **extra)
    if "checkpoint" in extra:
        job_options.checkpoint = Path(job_options.checkpoint)
    return job_options


def _check_demo_checkpoints(jobs: Sequence[Job], options: RunOptions,
                            model_options: dict[str, dict[str, Any]] | None) -> None:
    """Before any job: the data root is a non-empty folder, and no model would silently use demo weights."""
    from cxrbench.run import check_data_root_folder, check_demo_checkpoint
    from cxrbench.tasks.specs import get_task

    for task in sorted({job.task for job in jobs}):
        check_data_root_folder(get_task(task), options)
    for name in sorted({job.model for job in jobs}):
        check_demo_checkpoint(name, dataclasses.replace(options, **(model_options or {}).get(name, {})))


def run_sweep(models: Sequence[str] | str, tasks: Sequence[str] | str, label_fracs: Sequence[float],
              seeds: Sequence[int], shard: tuple[int, int] = (0, 1), options: RunOptions | None = None,
              keep_going: bool = True, console: Console | None = None,
              model_options: dict[str, dict[str, Any]] | None = None,
              launcher: "LauncherOptions | None" = None) -> list[Path]:
    """Run this shard's jobs of the grid, skipping records that exist; returns the record paths.

    Args:
        models, tasks: names, or ``"all"`` for every registered model / task.
        label_fracs: fractions for ft/seg tasks (ignored by zero-shot tasks).
        seeds: seeds for every job.
        shard: ``(i, n)``: run the jobs ``k`` with ``k % n == i`` of the sorted grid.
        options: run options; ``skip_existing`` is forced on and ``overwrite`` off so that sweeps resume.
        keep_going: on a failing job, go on with the others and raise :class:`SweepFailed` at the end.
        model_options: per-model option overrides (e.g. a checkpoint spec or image size for one model).
        launcher: where the jobs run (:class:`cxrbench.launchers.LauncherOptions`); default: in this process.
    """
    from cxrbench.run import run

    console = console or Console(stderr=True)
    options = dataclasses.replace(options or RunOptions(), skip_existing=True, overwrite=False)
    todo = shard_jobs(expand_grid(models, tasks, label_fracs, seeds), shard)
    _check_demo_checkpoints(todo, options, model_options)  # refused before any job runs
    console.print(f"sweep shard {shard[0]}/{shard[1]}: {len(todo)} job(s) -> {options.out}")
    if launcher is not None and launcher.kind != "inline":
        from cxrbench.launchers import launch

        paths, failures, _ = launch(todo, [job_options_for(options, model_options, job) for job in todo], launcher,
                                    console)
        if failures:
            raise SweepFailed(paths, failures)
        return paths
    paths: list[Path] = []
    failures: list[tuple[Job, str]] = []
    for k, job in enumerate(todo, 1):
        console.print(f"[{k}/{len(todo)}] {job}")
        try:
            job_options = job_options_for(options, model_options, job)
            paths.extend(run(job.model, job.task, [job.label_frac], [0 if job.seed is None else job.seed],
                             job_options))
        except UnsupportedSetting as err:  # the model's entry offers the setting, this checkpoint does not
            console.print(f"[yellow]skip (not supported by this checkpoint): {job}: {err}[/]")
        except Exception as err:  # one failing job must not lose the others
            if not keep_going:
                raise
            failures.append((job, f"{type(err).__name__}: {err}"))
            console.print(f"[red]failed: {job}: {err}[/]")
    if failures:
        raise SweepFailed(paths, failures)
    return paths
