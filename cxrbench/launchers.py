"""Where the jobs of a sweep run: in this process, as local subprocesses, or as a Slurm job array.

``cxrbench sweep --launcher inline`` (the default) runs the grid's jobs one after the other in this process.
``--launcher local`` and ``--launcher slurm`` hand each grid cell (one record) to submitit as its own job:
``local`` runs them as subprocesses of this machine (submitit's local executor), ``slurm`` submits one job
array with ``sbatch`` (partition, GPUs, CPUs, memory, time limit and array throttling are options). The job
itself is the same function in every case, :func:`run_cell`, which calls :func:`cxrbench.run.run` with
``skip_existing``: records are written atomically, so a cell that already has its record is never submitted,
and submitting the same sweep again (after a failure, a time-out or a cancelled array) submits exactly the
cells that still lack a record.

submitit keeps each job's pickled call, stdout and stderr under ``--launcher-folder`` (default
``<out>/.submitit``); a failed job's error names its log files.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from rich.console import Console

if TYPE_CHECKING:
    from cxrbench.run import RunOptions
    from cxrbench.sweep import Job

#: Launcher names accepted by ``cxrbench sweep --launcher``.
LAUNCHERS = ("inline", "local", "slurm")


@dataclass(frozen=True)
class LauncherOptions:
    """How to launch the cells of a sweep.

    ``array_parallelism`` throttles a Slurm array (``--array=0-N%K``); with ``local`` it is how many cells
    run at once on this machine (default 1: each cell already uses every core). ``wait`` (default: True for
    ``local``, False for ``slurm``) makes the command wait for every job and report failures.
    """

    kind: str = "inline"
    folder: Path | None = None
    partition: str | None = None
    gpus: int = 0
    cpus_per_task: int | None = None
    mem_gb: float | None = None
    time_min: int = 240
    array_parallelism: int | None = None
    account: str | None = None
    qos: str | None = None
    wait: bool | None = None

    def __post_init__(self) -> None:
        if self.kind not in LAUNCHERS:
            raise ValueError(f"unknown launcher {self.kind!r}: use one of {', '.join(LAUNCHERS)}")
        for name in ("gpus", "time_min"):
            if getattr(self, name) < 0:
                raise ValueError(f"launcher option {name} must be >= 0, got {getattr(self, name)}")
        if self.array_parallelism is not None and self.array_parallelism < 1:
            raise ValueError(f"--array-parallelism must be >= 1, got {self.array_parallelism}")

    @property
    def waits(self) -> bool:
        return self.kind == "local" if self.wait is None else self.wait

    def executor_parameters(self) -> dict[str, Any]:
        """The parameters given to ``submitit.AutoExecutor.update_parameters`` (generic names, Slurm-prefixed
        ones only for Slurm)."""
        params: dict[str, Any] = {"timeout_min": self.time_min, "nodes": 1, "tasks_per_node": 1}
        if self.gpus:
            params["gpus_per_node"] = self.gpus
        if self.cpus_per_task:
            params["cpus_per_task"] = self.cpus_per_task
        if self.mem_gb:
            params["mem_gb"] = self.mem_gb
        if self.kind == "slurm":
            if self.partition:
                params["slurm_partition"] = self.partition
            if self.account:
                params["slurm_account"] = self.account
            if self.qos:
                params["slurm_qos"] = self.qos
            if self.array_parallelism:
                params["slurm_array_parallelism"] = self.array_parallelism
        return params


def run_cell(job: "Job", options: "RunOptions") -> list[str]:
    """One grid cell, as a submitit job runs it: the record's path (existing records are kept)."""
    from cxrbench.models.base import UnsupportedSetting
    from cxrbench.run import run

    try:
        seed = 0 if job.seed is None else job.seed  # a deterministic cell (seed None) runs once
        return [str(p) for p in run(job.model, job.task, [job.label_frac], [seed], options)]
    except UnsupportedSetting as err:  # the entry offers the setting, this checkpoint does not: not a failure
        Console(stderr=True).print(f"[yellow]skip (not supported by this checkpoint): {job}: {err}[/]")
        return []


def _job_error(err: Exception) -> str:
    """The job's own exception line out of submitit's error (which wraps the job's traceback)."""
    lines = [line.strip() for line in str(err).splitlines()]
    end = next((i for i, line in enumerate(lines) if line.startswith("You can check")), len(lines))
    body = [line for line in lines[:end] if line and not set(line) <= {"-"}]
    return body[-1] if body else type(err).__name__


def _executor(launcher: LauncherOptions, folder: Path):
    import submitit

    executor = submitit.AutoExecutor(folder=str(folder), cluster=launcher.kind)
    executor.update_parameters(name="cxrbench-sweep", **launcher.executor_parameters())
    return executor


def launch(jobs: Sequence["Job"], job_options: Sequence["RunOptions"], launcher: LauncherOptions,
           console: Console | None = None) -> tuple[list[Path], list[tuple["Job", str]], list[str]]:
    """Submit one submitit job per cell that still lacks its record.

    Returns (record paths, failures as (job, error), submitted job ids). Records that exist are returned
    without submitting anything; without waiting, only those are among the paths.
    """
    from cxrbench.results import record_path

    console = console or Console(stderr=True)
    done: list[Path] = []
    todo: list[tuple[Job, RunOptions]] = []
    for job, opts in zip(jobs, job_options, strict=True):
        path = record_path(opts.out, job.model, job.task, job.label_frac, job.seed)
        if path.exists():
            done.append(path)
        else:
            todo.append((job, dataclasses.replace(opts, skip_existing=True, overwrite=False, progress=False)))
    console.print(f"{len(done)} cell(s) already have records; submitting {len(todo)} through submitit "
                  f"({launcher.kind})")
    if not todo:
        return done, [], []
    folder = Path(launcher.folder or (Path(todo[0][1].out) / ".submitit"))
    folder.mkdir(parents=True, exist_ok=True)
    executor = _executor(launcher, folder)
    # local: a few cells at a time (each uses every core); slurm: one array, throttled by Slurm itself
    batch = len(todo) if launcher.kind == "slurm" else (launcher.array_parallelism or 1)
    failures: list[tuple[Job, str]] = []
    ids: list[str] = []
    paths = list(done)
    for start in range(0, len(todo), batch):
        chunk = todo[start:start + batch]
        submitted = executor.map_array(run_cell, [j for j, _ in chunk], [o for _, o in chunk])
        ids.extend(str(s.job_id) for s in submitted)
        console.print(f"submitted {len(submitted)} job(s): {', '.join(str(s.job_id) for s in submitted)} "
                      f"(logs in {folder})")
        if not launcher.waits:
            continue
        for (job, _), sub in zip(chunk, submitted):
            try:
                paths.extend(Path(p) for p in sub.result())
                console.print(f"done: {job}")
            except Exception as err:  # a failed job must not lose the others; its record stays absent
                failures.append((job, f"{_job_error(err)} (logs: {sub.paths.stdout}, {sub.paths.stderr})"))
                console.print(f"[red]failed: {job}[/]")
    return paths, failures, ids


__all__ = ["LAUNCHERS", "LauncherOptions", "launch", "run_cell"]
