"""``cxrbench prep mimic``: a MIMIC-CXR-JPG folder with reports -> the published MeDSLIP pre-training files.

Input (``--root``, data-formats.md section 5): ``files/pXX/pXXXXXXXX/sXXXXXXXX/<dicom_id>.jpg``, the reports
beside the study folders (``files/pXX/pXXXXXXXX/sXXXXXXXX.txt``, from ``mimic-cxr-reports.zip``), and the
official split table ``mimic-cxr-2.0.0-split.csv[.gz]`` (plus the metadata and CheXpert tables of the JPG
release, read through the ``mimic-cxr`` dataset adapter).  With ``--radgraph FILE`` the matrices come from
RadGraph JSON (``MIMIC-CXR_graphs.json``, data-formats.md 7.5, keys ``pXX/pXXXXXXXX/sXXXXXXXX.txt``) instead of
the report text; studies the RadGraph file does not cover are left out (as in the published files).

Output (``--out``, data-formats.md section 7):

- ``train.json`` / ``valid.json`` / ``test.json``: ``{absolute image path: {"labels_id": row}}`` for the
  official ``train`` / ``validate`` / ``test`` split; every image of a study maps to the study's row;
- ``landmark_observation_adj_mtx.npy``: float64 ``(N_studies, 51, 75)`` in {-1, 0, 1} (the published dtype;
  ``medslip.pretrain`` and the ``medslip-pretrain`` adapter accept any numeric dtype), one row per study;
- ``landmark_observation_sids.npy`` (``<U8``) and ``study_ids.txt`` (one id per line): the MIMIC study id of
  each row, in row order;
- ``prep_manifest.json``: source, counts, skipped images / studies (deterministic: no timestamps);
- ``.partial/``: the resumable work (``plan.json`` + one compressed ``chunk-NNNNNN.npz`` per chunk of studies);
  a rerun skips finished chunks, ``--force`` deletes it first.  It may be deleted once the run finished.

Rows are ordered by ``(subject_id, study_id)``; JSON keys by row, then by ``dicom_id``.  Nothing is written
outside ``--out`` (temporary files live beside their target and are renamed into place).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Iterator, Mapping, Optional, Sequence

import numpy as np
import typer

__all__ = [
    "ChunkTask", "PrepError", "PrepResult", "StudyPlan", "default_workers", "plan_mimic_studies", "prepare_mimic",
    "register",
]

MATRIX_NAME = "landmark_observation_adj_mtx.npy"
SIDS_NAME = "landmark_observation_sids.npy"
STUDY_IDS_NAME = "study_ids.txt"
MANIFEST_NAME = "prep_manifest.json"
PARTIAL_DIR = ".partial"
PLAN_NAME = "plan.json"
#: our split name (as the ``mimic-cxr`` adapter's table holds the raw MIMIC value) -> output file
SPLIT_FILES: dict[str, str] = {"train": "train.json", "validate": "valid.json", "test": "test.json"}
_SPLIT_ALIASES = {"train": "train", "validate": "validate", "val": "validate", "valid": "validate", "test": "test"}
SPLIT_CSV_NAMES = ("mimic-cxr-2.0.0-split.csv.gz", "mimic-cxr-2.0.0-split.csv")
DEFAULT_CHUNK_SIZE = 1000
#: bump when the partial-chunk format or the row order changes (old partials are then refused)
FORMAT_VERSION = 1
_RADGRAPH_KEY = re.compile(r"(?:^|/)s(\d+)(?:\.txt)?$")


class PrepError(RuntimeError):
    """An input problem the user must fix (missing root, split table, reports) or stale partial results."""


@dataclass(frozen=True)
class StudyPlan:
    """The studies to prepare, in row order, with their images (absolute paths) and official splits."""

    root: Path
    study_ids: list[str]
    report_paths: list[str]
    #: per study: ``[(image path, split), ...]`` sorted by dicom id
    images: list[list[tuple[str, str]]]
    #: images of the MIMIC tables with no official split (left out)
    images_without_split: int = 0


@dataclass(frozen=True)
class ChunkTask:
    """One unit of parallel work: the studies ``[start, start + len(study_ids))`` of the plan."""

    index: int
    study_ids: tuple[str, ...]
    #: report file paths (text mode) or RadGraph entries (RadGraph mode), parallel to ``study_ids``
    sources: tuple[Any, ...]
    radgraph: bool
    partial_path: str


@dataclass
class PrepResult:
    """What a run did: where, how many studies / images per split, how many studies were computed now."""

    out: Path
    studies: int
    images: dict[str, int]
    computed_studies: int
    reused_studies: int
    chunks: int
    seconds: float
    skipped: dict[str, int] = field(default_factory=dict)

    @property
    def studies_per_second(self) -> float:
        """Throughput of the studies computed in this run (0 when everything was reused)."""
        return self.computed_studies / self.seconds if self.seconds > 0 else 0.0


def default_workers() -> int:
    """``min(4, usable CPUs)``."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cpus = os.cpu_count() or 1
    return max(1, min(4, cpus))


# -- planning ---------------------------------------------------------------------------------------------------
def plan_mimic_studies(root: str | Path) -> StudyPlan:
    """Read the MIMIC tables at ``root`` (through the ``mimic-cxr`` adapter) into a :class:`StudyPlan`.

    Only images listed in the official split table are used; a study whose images are all without split is
    left out.  Raises :class:`PrepError` for a missing root or split table.
    """
    from cxrbench.data.base import DatasetLayoutError, ProblemLog
    from cxrbench.data.registry import DATASETS

    root = Path(root).expanduser()
    if not root.is_dir():
        raise PrepError(f"--root {root}: no such folder (expected the mimic-cxr-jpg/2.0.0 folder)")
    root = root.resolve()
    if not any((root / name).is_file() for name in SPLIT_CSV_NAMES):
        raise PrepError(f"--root {root}: no official split table (looked for {', '.join(SPLIT_CSV_NAMES)}); "
                        "it ships with MIMIC-CXR-JPG 2.0.0")
    try:
        table = DATASETS["mimic-cxr"].read(root, ProblemLog(), locate_images=False)  # type: ignore[attr-defined]
    except DatasetLayoutError as exc:
        raise PrepError(str(exc)) from None
    split = table["split"].map(lambda s: _SPLIT_ALIASES.get(str(s)) if s is not None else None)
    unknown = sorted({str(s) for s, m in zip(table["split"], split) if s is not None and m is None})
    if unknown:
        raise PrepError(f"{root}: unknown split values {unknown} in the split table (expected train/validate/test)")
    has_split = split.notna()
    frame = table.loc[has_split, ["image_id", "patient_id", "study_id", "path", "report_path"]].copy()
    frame["split"] = split[has_split].to_numpy()
    frame["_subject"] = frame["patient_id"].astype(int)
    frame["_study"] = frame["study_id"].astype(int)
    frame = frame.sort_values(["_subject", "_study", "image_id"], kind="stable")
    keys = frame["_study"].to_numpy()
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]]) if len(keys) else np.zeros(0, dtype=int)
    stops = np.r_[starts[1:], len(keys)].astype(int)
    paths, splits = frame["path"].astype(str).tolist(), frame["split"].astype(str).tolist()
    report_col = frame["report_path"].astype(str).tolist()
    study_ids = [str(int(keys[a])) for a in starts]
    reports = [report_col[a] for a in starts]
    images = [list(zip(paths[a:b], splits[a:b])) for a, b in zip(starts.tolist(), stops.tolist())]
    return StudyPlan(root=root, study_ids=study_ids, report_paths=reports, images=images,
                     images_without_split=int((~has_split).sum()))


def _radgraph_index(path: Path) -> dict[str, Mapping[str, Any]]:
    """RadGraph JSON -> ``{study id: entry}`` (keys ``pXX/pXXXXXXXX/sXXXXXXXX.txt``)."""
    if not path.is_file():
        raise PrepError(f"--radgraph {path}: no such file")
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except json.JSONDecodeError as exc:
        raise PrepError(f"--radgraph {path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise PrepError(f"--radgraph {path}: expected a JSON object {{report key: entry}}")
    index: dict[str, Mapping[str, Any]] = {}
    for key, entry in data.items():
        match = _RADGRAPH_KEY.search(str(key))
        if match is None:
            raise PrepError(f"--radgraph {path}: key {key!r} is not a report key like p10/p10000032/s50414267.txt")
        index[str(int(match.group(1)))] = entry
    return index


def _rules_digest() -> str:
    from importlib import resources

    text = resources.files("medslip.triplets").joinpath("rules.yaml").read_bytes()
    return hashlib.sha256(text).hexdigest()[:16]


def _plan_record(plan: StudyPlan, radgraph: Path | None, chunk_size: int) -> dict[str, Any]:
    ids = hashlib.sha256("\n".join(plan.study_ids).encode()).hexdigest()
    source: dict[str, Any] = {"kind": "reports", "rules_sha256": _rules_digest()}
    if radgraph is not None:
        stat = radgraph.stat()
        source = {"kind": "radgraph", "path": str(radgraph), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns,
                  "rules_sha256": source["rules_sha256"]}
    return {"format": FORMAT_VERSION, "root": str(plan.root), "source": source, "chunk_size": chunk_size,
            "studies": len(plan.study_ids), "study_ids_sha256": ids}


# -- the work (runs in worker processes) -----------------------------------------------------------------------
@contextlib.contextmanager
def _atomic(path: Path) -> Iterator[Path]:
    """:func:`medslip.atomic.atomic_path`, with the usual permissions (umask) instead of ``mkstemp``'s 0600."""
    from medslip.atomic import atomic_path

    with atomic_path(path) as tmp:
        yield tmp
        os.chmod(tmp, 0o666 & ~_UMASK)


def _write_text(path: Path, text: str) -> None:
    with _atomic(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


def _save_chunk(path: Path, study_ids: Sequence[str], matrices: np.ndarray) -> None:
    with _atomic(path) as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(fh, study_ids=np.asarray(study_ids, dtype=str), matrices=matrices)


def _process_chunk(task: ChunkTask) -> tuple[int, int, list[str]]:
    """Compute one chunk's int8 matrices and save them; returns ``(index, studies, missing reports)``.

    A chunk with a missing report is not saved (so that a rerun, once the reports are in place, redoes it).
    """
    from medslip.triplets import report_to_matrix
    from medslip.triplets.radgraph import iter_radgraph

    matrices = np.empty((len(task.study_ids), 51, 75), dtype=np.int8)
    missing: list[str] = []
    if task.radgraph:
        entries = dict(zip(task.study_ids, task.sources))
        for i, (_, matrix) in enumerate(iter_radgraph(entries)):
            matrices[i] = matrix
    else:
        for i, report in enumerate(task.sources):
            try:
                text = Path(report).read_text(encoding="utf-8", errors="replace")
            except FileNotFoundError:
                missing.append(str(report))
                continue
            matrices[i] = report_to_matrix(text)
    if not missing:
        _save_chunk(Path(task.partial_path), task.study_ids, matrices)
    return task.index, len(task.study_ids), missing


def _load_chunk(path: Path, expected_ids: Sequence[str]) -> np.ndarray | None:
    """A finished chunk's matrices, or ``None`` when the file is absent, unreadable or for other studies."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            ids, matrices = data["study_ids"], data["matrices"]
    except Exception:  # a damaged partial is redone, not trusted
        return None
    if list(ids.tolist()) != list(expected_ids) or matrices.shape != (len(expected_ids), 51, 75):
        return None
    return matrices


# -- orchestration ---------------------------------------------------------------------------------------------
def _prepare_partials(out: Path, record: dict[str, Any], force: bool) -> Path:
    partial = out / PARTIAL_DIR
    plan_file = partial / PLAN_NAME
    if force and partial.exists():
        shutil.rmtree(partial)
    if plan_file.is_file():
        try:
            old = json.loads(plan_file.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            old = None
        if old != record:
            raise PrepError(f"{partial} holds partial results of a different input (root, source, rules or chunk "
                            "size changed); rerun with --force to start again")
    else:
        if partial.exists() and any(partial.iterdir()):
            raise PrepError(f"{partial} has files but no {PLAN_NAME}; rerun with --force to start again")
        _write_text(plan_file, json.dumps(record, indent=1, sort_keys=True) + "\n")
    return partial


@contextlib.contextmanager
def _chunk_results(tasks: list[ChunkTask], workers: int) -> Iterator[Iterator[tuple[int, int, list[str]]]]:
    """The results of :func:`_process_chunk` over ``tasks`` as they finish, in this process or a pool.

    The pool forks where the platform can (the workers inherit the imported modules; ``spawn`` would re-import
    torch in every worker, seconds each) and is started before the progress bar's thread exists.
    """
    if workers <= 1 or len(tasks) <= 1:
        yield (_process_chunk(task) for task in tasks)
        return
    import multiprocessing

    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    with multiprocessing.get_context(method).Pool(processes=min(workers, len(tasks))) as pool:
        yield pool.imap_unordered(_process_chunk, tasks, chunksize=1)


@dataclass
class _Progress:
    """A rich progress bar over studies (or nothing when disabled)."""

    total: int
    done: int
    enabled: bool
    _bar: Any = None
    _task: Any = None

    def __enter__(self) -> "_Progress":
        if self.enabled:
            from rich.progress import (
                BarColumn, MofNCompleteColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._bar = Progress(TextColumn("prep mimic"), BarColumn(), MofNCompleteColumn(), TextColumn("studies"),
                                 TaskProgressColumn(), TimeElapsedColumn(), TimeRemainingColumn())
            self._bar.__enter__()
            self._task = self._bar.add_task("studies", total=self.total, completed=self.done)
        return self

    def advance(self, k: int) -> None:
        if self._bar is not None:
            self._bar.advance(self._task, k)

    def __exit__(self, *exc: Any) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)


def _iter_chunks(n: int, chunk_size: int) -> Iterator[tuple[int, int, int]]:
    for index, start in enumerate(range(0, n, chunk_size)):
        yield index, start, min(n, start + chunk_size)


def _assemble(out: Path, partial: Path, plan: StudyPlan, keep: np.ndarray, chunk_size: int,
              manifest: dict[str, Any]) -> dict[str, int]:
    """Write the final files from the partial chunks; returns images per split."""
    rows = np.flatnonzero(keep)
    row_of = np.full(len(plan.study_ids), -1, dtype=np.int64)
    row_of[rows] = np.arange(len(rows))
    with _atomic(out / MATRIX_NAME) as tmp:
        matrix = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float64, shape=(len(rows), 51, 75))
        for index, start, stop in _iter_chunks(len(plan.study_ids), chunk_size):
            chunk = _load_chunk(partial / f"chunk-{index:06d}.npz", plan.study_ids[start:stop])
            if chunk is None:  # pragma: no cover - guarded by the caller
                raise PrepError(f"partial chunk {index} vanished during assembly; rerun")
            sel = keep[start:stop]
            if sel.any():
                matrix[row_of[start:stop][sel]] = chunk[sel]
        matrix.flush()
        del matrix
    ann: dict[str, dict[str, dict[str, int]]] = {split: {} for split in SPLIT_FILES}
    for i in rows:
        for path, split in plan.images[i]:
            ann[split][path] = {"labels_id": int(row_of[i])}
    for split, name in SPLIT_FILES.items():
        _write_text(out / name, json.dumps(ann[split]))
    kept_ids = [plan.study_ids[i] for i in rows]
    with _atomic(out / SIDS_NAME) as tmp, open(tmp, "wb") as fh:
        np.save(fh, np.asarray(kept_ids, dtype=f"<U{max((len(s) for s in kept_ids), default=1)}"))
    _write_text(out / STUDY_IDS_NAME, "".join(f"{s}\n" for s in kept_ids))
    images = {split: len(ann[split]) for split in SPLIT_FILES}
    manifest = {**manifest, "studies": len(rows), "images": images}
    _write_text(out / MANIFEST_NAME, json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return images


def prepare_mimic(
    root: str | Path,
    out: str | Path,
    workers: int | None = None,
    radgraph: str | Path | None = None,
    force: bool = False,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    progress: bool = True,
) -> PrepResult:
    """Write the MeDSLIP pre-training files for the MIMIC-CXR-JPG folder ``root`` into ``out``.

    Args:
        root: the ``mimic-cxr-jpg/2.0.0`` folder with the reports unpacked into ``files/``.
        out: output folder (created); nothing is written elsewhere.
        workers: worker processes (default :func:`default_workers`); 1 runs in this process.
        radgraph: a RadGraph JSON to read instead of the report text.
        force: discard the partial results of a previous run.
        chunk_size: studies per resumable chunk (changing it invalidates existing partials).
        progress: show a rich progress bar.

    Returns:
        A :class:`PrepResult` (``computed_studies`` counts the studies processed in this call).

    Raises:
        PrepError: missing root / split table / reports / RadGraph file, or partials of another input.
    """
    start_time = time.perf_counter()
    workers = default_workers() if workers is None else int(workers)
    if workers < 1:
        raise PrepError(f"--workers must be at least 1 (got {workers})")
    if chunk_size < 1:
        raise PrepError(f"chunk size must be at least 1 (got {chunk_size})")
    plan = plan_mimic_studies(root)
    if not plan.study_ids:
        raise PrepError(f"{plan.root}: the split table lists no image of the metadata table")
    radgraph_path = Path(radgraph).expanduser().resolve() if radgraph is not None else None
    n = len(plan.study_ids)
    if radgraph_path is not None:
        index = _radgraph_index(radgraph_path)
        keep = np.array([s in index for s in plan.study_ids], dtype=bool)
        sources: list[Any] = [index.get(s, {"entities": {}}) for s in plan.study_ids]
        if not keep.any():
            raise PrepError(f"--radgraph {radgraph_path}: none of its {len(index)} keys is a study of {plan.root}")
        skipped = {"images_without_split": plan.images_without_split,
                   "studies_without_radgraph": int((~keep).sum()),
                   "radgraph_entries_not_in_split": len(set(index) - set(plan.study_ids))}
    else:
        keep = np.ones(n, dtype=bool)
        sources = plan.report_paths
        skipped = {"images_without_split": plan.images_without_split}

    out_path = Path(out).expanduser().resolve()
    out_path.mkdir(parents=True, exist_ok=True)
    record = _plan_record(plan, radgraph_path, chunk_size)
    partial = _prepare_partials(out_path, record, force)

    tasks: list[ChunkTask] = []
    reused = 0
    for index, start, stop in _iter_chunks(n, chunk_size):
        chunk_path = partial / f"chunk-{index:06d}.npz"
        ids = tuple(plan.study_ids[start:stop])
        if _load_chunk(chunk_path, ids) is not None:
            reused += stop - start
            continue
        tasks.append(ChunkTask(index=index, study_ids=ids, sources=tuple(sources[start:stop]),
                               radgraph=radgraph_path is not None, partial_path=str(chunk_path)))
    computed = 0
    missing: list[str] = []
    with _chunk_results(tasks, workers) as results, _Progress(total=n, done=reused, enabled=progress) as bar:
        for _index, count, missing_here in results:
            missing.extend(missing_here)
            if not missing_here:
                computed += count
            bar.advance(count)
    if missing:
        examples = "\n  ".join(sorted(missing)[:5])
        raise PrepError(f"{len(missing)} report(s) missing under {plan.root} (unpack mimic-cxr-reports.zip into "
                        f"the root so that files/pXX/pXXXXXXXX/sXXXXXXXX.txt exist), e.g.:\n  {examples}\n"
                        "The finished chunks are kept; rerun once the reports are in place.")
    manifest = {"generator": "cxrbench prep mimic", "format": FORMAT_VERSION, "root": str(plan.root),
                "source": record["source"], "paths": "absolute", "matrix_dtype": "float64", "skipped": skipped,
                "row_order": "(subject_id, study_id)"}
    images = _assemble(out_path, partial, plan, keep, chunk_size, manifest)
    return PrepResult(out=out_path, studies=int(keep.sum()), images=images, computed_studies=computed,
                      reused_studies=reused, chunks=len(list(_iter_chunks(n, chunk_size))),
                      seconds=time.perf_counter() - start_time, skipped=skipped)


# -- CLI --------------------------------------------------------------------------------------------------------
prep_app = typer.Typer(help="Prepare pre-training files from raw datasets.", no_args_is_help=True)


@prep_app.command("mimic")
def mimic_command(
    root: Annotated[Path, typer.Option("--root", help="the mimic-cxr-jpg/2.0.0 folder, reports in files/")],
    out: Annotated[Path, typer.Option("--out", help="output folder (nothing is written elsewhere)")],
    workers: Annotated[
        Optional[int], typer.Option("--workers", help="worker processes (default: min(4, CPUs))")
    ] = None,
    radgraph: Annotated[
        Optional[Path], typer.Option("--radgraph", help="read RadGraph JSON (MIMIC-CXR_graphs.json), not reports")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="discard partial results of an earlier run")] = False,
    chunk_size: Annotated[
        int, typer.Option("--chunk-size", help="studies per resumable chunk")
    ] = DEFAULT_CHUNK_SIZE,
) -> None:
    """Write train/valid/test.json + landmark_observation_adj_mtx.npy (MeDSLIP pre-training files)."""
    try:
        result = prepare_mimic(root, out, workers=workers, radgraph=radgraph, force=force, chunk_size=chunk_size)
    except PrepError as exc:  # a user error: one line, exit 2 (docs/errors.md)
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    per_split = ", ".join(f"{SPLIT_FILES[k]} {v:,}" for k, v in result.images.items())
    typer.echo(f"wrote {result.studies:,} studies ({per_split} images) to {result.out}")
    typer.echo(f"computed {result.computed_studies:,} studies, reused {result.reused_studies:,} from "
               f"{PARTIAL_DIR}/ in {result.seconds:.1f} s")
    notes = {k: v for k, v in result.skipped.items() if v}
    if notes:
        typer.echo("left out: " + ", ".join(f"{k.replace('_', ' ')} {v:,}" for k, v in notes.items()))


def register(app: typer.Typer) -> None:
    """Add the ``prep`` sub-app (``cxrbench prep mimic``) to the main CLI."""
    app.add_typer(prep_app, name="prep")
