"""``cxrbench zoo``: list, show, fetch, verify the published checkpoints; check a fixture."""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
from fnmatch import fnmatch
from pathlib import Path

import typer

zoo_app = typer.Typer(name="zoo", help="The model zoo: published checkpoints (list, show, fetch, verify, reference).",
                      no_args_is_help=True, add_completion=False)


def _fail(message: str, code: int = 2) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _entry(name: str):
    from cxrbench.zoo.catalog import CatalogError, get_entry

    try:
        return get_entry(name)
    except KeyError as err:
        _fail(err.args[0])
    except CatalogError as err:
        _fail(str(err))


@zoo_app.command("list")
def list_cmd() -> None:
    """Table of the zoo's models: family, weights, licence, settings, default zero-shot rule."""
    from tabulate import tabulate

    from cxrbench.zoo.catalog import load_catalog

    rows = []
    for name, e in load_catalog().items():
        where = e.weights.repo if e.weights.source == "hf-hub" else "manual download"
        licence = e.licence.name.split(" (")[0] + (" [non-commercial]" if e.licence.non_commercial else "")
        rows.append([name, e.family, where, licence, ",".join(s for s in ("zs", "ground", "ft", "seg") if s in e.settings),
                     e.default_rule])
    typer.echo(tabulate(rows, headers=["model", "family", "weights", "licence", "settings", "zero-shot rule"]))


def _plain(value):
    if isinstance(value, (frozenset, set)):
        return [s for s in ("zs", "ground", "ft", "seg") if s in value] or sorted(value)
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


@zoo_app.command("show")
def show_cmd(name: str = typer.Argument(..., help="zoo model (see `cxrbench zoo list`)")) -> None:
    """Every field of one entry, and where its manually downloaded files go."""
    import yaml

    e = _entry(name)
    data = _plain(dataclasses.asdict(e))
    data["weights"]["local_folder"] = str(e.folder())
    typer.echo(yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=110).rstrip())


@zoo_app.command("fetch")
def fetch_cmd(
    name: str = typer.Argument(..., help="zoo model (see `cxrbench zoo list`)"),
    allow_download: bool = typer.Option(False, "--allow-download", help="allow downloading from the Hugging Face hub"),
) -> None:
    """Download a hub-hosted checkpoint (pinned revision, into the Hugging Face cache) with --allow-download;
    for manually hosted weights print the exact steps and the folder to put the files in."""
    from cxrbench.downloads import HOW_TO_ALLOW, allow_downloads, downloads_allowed

    e = _entry(name)
    w = e.weights
    if w.source == "manual":
        typer.echo(f"{name}: the weights are not hosted on a hub; download them by hand from {w.url}")
        for i, step in enumerate(w.steps, 1):
            typer.echo(f"  {i}. {step}")
        typer.echo(f"files: {', '.join(w.files)}")
        typer.echo(f"folder: {e.folder()}")
        return
    if allow_download:
        allow_downloads()
    if not downloads_allowed():
        _fail(f"`zoo fetch {name}` downloads {w.repo} from the Hugging Face hub; {HOW_TO_ALLOW}")
    from huggingface_hub import snapshot_download

    revision = w.revision if w.revision_verified else None
    if not w.revision_verified:
        typer.echo(f"warning: {name}'s revision is unverified ({w.revision_note}); fetching the default branch",
                   err=True)
    path = snapshot_download(repo_id=w.repo, revision=revision, allow_patterns=list(w.files))
    typer.echo(f"{name}: {w.repo}@{revision or 'main'} -> {path}")


def _digest(path: Path, algo: str) -> str:
    h = hashlib.new(algo)
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def check_checksums(entry, path: Path) -> list[str]:
    """Lines about the published checksums of ``path``'s file name; raises ValueError on a mismatch."""
    files = [p for p in sorted(path.rglob("*")) if p.is_file()] if path.is_dir() else [path]
    lines = []
    for file in files:
        sums = entry.weights.checksums.get(file.name)
        if not sums:
            lines.append(f"{file.name}: no published checksum (sha256 {_digest(file, 'sha256')})")
            continue
        for algo, want in sums.items():
            got = _digest(file, algo)
            if got != want:
                raise ValueError(f"{file}: {algo} {got} differs from the published {want}")
            lines.append(f"{file.name}: {algo} matches the published {want}")
    return lines


def verify_load(name: str, entry, path: Path) -> str:
    """Strict load through the family's loader: ``cxrbench.models.<family>.verify_checkpoint(name, path)`` when
    the adapter module defines it, else the registry loader with ``checkpoint=path``."""
    module = importlib.import_module(f"cxrbench.models.{entry.family}")
    verify = getattr(module, "verify_checkpoint", None)
    if verify is not None:
        result = verify(name, path)
        return str(result) if result else "loads strictly"
    from cxrbench.models.registry import get_model

    get_model(name).load(checkpoint=path, progress=False)
    return "loads strictly"


@zoo_app.command("verify")
def verify_cmd(
    name: str = typer.Argument(..., help="zoo model (see `cxrbench zoo list`)"),
    path: Path = typer.Argument(..., help="downloaded checkpoint file (or folder)"),
) -> None:
    """Check the published checksum (when there is one) and load PATH strictly through the model's loader;
    a mismatch prints the missing / unexpected / mis-shaped keys grouped by prefix and exits 2."""
    from medslip.checkpoint import CheckpointMismatch

    e = _entry(name)
    if not path.exists():
        _fail(f"checkpoint not found: {path}")
    try:
        for line in check_checksums(e, path):
            typer.echo(line)
        outcome = verify_load(name, e, path)
    except CheckpointMismatch as err:
        typer.echo(f"{path}: does not load strictly as {name}", err=True)
        typer.echo(str(err), err=True)
        raise typer.Exit(2) from None
    except (ValueError, FileNotFoundError, KeyError) as err:
        _fail(err.args[0] if isinstance(err, KeyError) and err.args else str(err))
    typer.echo(f"{path}: {outcome} as {name}")


@zoo_app.command("reference")
def reference_cmd(fixture: Path = typer.Argument(..., help="zoo fixture (.safetensors) made from the published code")) -> None:
    """Rebuild the fixture's model (its `model` metadata) through the user path, print each expected tensor's
    difference, exit 0 only if all are within tolerance."""
    from tabulate import tabulate

    from cxrbench.zoo.reference import ReferenceUnavailable, check_fixture

    try:
        model, verdicts = check_fixture(fixture)
    except (ReferenceUnavailable, FileNotFoundError) as err:
        _fail(str(err))
    rows = [[v.name, "x".join(map(str, v.shape)), f"{v.max_abs:.3g}", f"{v.rel:.3g}", v.tolerance,
             "ok" if v.ok else "FAIL"] for v in verdicts]
    typer.echo(f"{fixture}: model {model}")
    typer.echo(tabulate(rows, headers=["tensor", "shape", "max |diff|", "rel", "tolerance", ""]))
    bad = [v for v in verdicts if not v.ok]
    if bad or not verdicts:
        typer.echo(f"{len(bad)} of {len(verdicts)} check(s) outside tolerance", err=True)
        raise typer.Exit(1)
    typer.echo(f"all {len(verdicts)} checks within tolerance")


def register(app: typer.Typer) -> None:
    """Add the ``zoo`` sub-commands to ``app``."""
    app.add_typer(zoo_app, name="zoo")


__all__ = ["check_checksums", "register", "verify_load", "zoo_app"]
