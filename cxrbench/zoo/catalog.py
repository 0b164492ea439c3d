"""The zoo catalog: one entry per published checkpoint, read from ``catalog.yaml`` beside this module.

Schema of an entry (``name: {...}`` in the YAML mapping)::

    family: adapter module name under cxrbench/models/ (cxrbench.models.<family>)
    paper: {citation: str, url: str}
    architecture: str
    weights:
      source: hf-hub | manual
      repo: ORG/NAME                 (hf-hub)
      revision: commit hash | "unverified"   (hf-hub; with revision_note saying why when not verified)
      revision_note: str             (optional)
      files: [file names]
      url: project page / drive folder   (manual; optional for hf-hub)
      steps: [exact steps]           (manual)
      folder: where the files go, relative to $CXRBENCH_CACHE/zoo/<name>
      checksums: {file: {sha256|md5: hex}}   (published ones only; may be empty)
    licence: {name: str, url: str, non_commercial: bool}
    text_tower: str
    settings: [zs, ground, ft, seg]  (subset)
    zero_shot_rules: [names]         (first = default)
    reduced: {...}                   (small random-config overrides for tests / random weights)
    gaps: [{text: str, url: str}]

:func:`load_catalog` validates every entry and raises :class:`CatalogError` naming the entry and field.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

CATALOG_FILE = Path(__file__).with_name("catalog.yaml")
SETTINGS = ("zs", "ground", "ft", "seg")
SOURCES = ("hf-hub", "manual")
HASHES = {"sha256": 64, "md5": 32}
UNVERIFIED = "unverified"

_ENTRY_KEYS = {"family", "paper", "architecture", "weights", "licence", "text_tower", "settings",
               "zero_shot_rules", "reduced", "gaps"}
_REQUIRED = {"family", "paper", "architecture", "weights", "licence", "settings", "zero_shot_rules"}
_WEIGHT_KEYS = {"source", "repo", "revision", "revision_note", "files", "url", "steps", "folder", "checksums"}


class CatalogError(ValueError):
    """catalog.yaml (or a file given in its place) is malformed; the message names the entry and field."""


@dataclass(frozen=True)
class Paper:
    citation: str
    url: str


@dataclass(frozen=True)
class Licence:
    name: str
    url: str
    non_commercial: bool


@dataclass(frozen=True)
class Gap:
    text: str
    url: str | None = None


@dataclass(frozen=True)
class Weights:
    source: str
    files: tuple[str, ...]
    folder: str
    repo: str | None = None
    revision: str | None = None
    revision_note: str | None = None
    url: str | None = None
    steps: tuple[str, ...] = ()
    checksums: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def revision_verified(self) -> bool:
        return bool(self.revision) and self.revision != UNVERIFIED


@dataclass(frozen=True)
class ZooEntry:
    name: str
    family: str
    paper: Paper
    architecture: str
    weights: Weights
    licence: Licence
    settings: frozenset[str]
    zero_shot_rules: tuple[str, ...]
    text_tower: str | None = None
    reduced: dict[str, Any] = field(default_factory=dict)
    gaps: tuple[Gap, ...] = ()

    @property
    def default_rule(self) -> str:
        return self.zero_shot_rules[0]

    def folder(self) -> Path:
        """Where manually downloaded files go: ``$CXRBENCH_CACHE/zoo/<name>/<weights.folder>``."""
        from cxrbench.paths import cache_dir

        return cache_dir() / "zoo" / self.name / self.weights.folder


def _need(cond: bool, name: str, what: str) -> None:
    if not cond:
        raise CatalogError(f"zoo catalog entry {name!r}: {what}")


def _str(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _parse_entry(name: str, raw: Any) -> ZooEntry:
    _need(isinstance(raw, dict), name, "must be a mapping")
    unknown = set(raw) - _ENTRY_KEYS
    _need(not unknown, name, f"unknown field(s) {', '.join(sorted(unknown))} (allowed: {', '.join(sorted(_ENTRY_KEYS))})")
    missing = _REQUIRED - set(raw)
    _need(not missing, name, f"missing field(s) {', '.join(sorted(missing))}")
    _need(_str(raw["family"]) and re.fullmatch(r"[a-z_][a-z0-9_]*", raw["family"]) is not None, name,
          f"family must be a module name under cxrbench/models/, got {raw['family']!r}")
    paper = raw["paper"]
    _need(isinstance(paper, dict) and _str(paper.get("citation")) and _str(paper.get("url")), name,
          "paper needs citation and url")
    _need(_str(raw["architecture"]), name, "architecture must be a non-empty string")

    w = raw["weights"]
    _need(isinstance(w, dict), name, "weights must be a mapping")
    unknown = set(w) - _WEIGHT_KEYS
    _need(not unknown, name, f"weights: unknown field(s) {', '.join(sorted(unknown))}")
    _need(w.get("source") in SOURCES, name, f"weights.source must be one of {', '.join(SOURCES)}, got {w.get('source')!r}")
    files = w.get("files") or []
    _need(isinstance(files, list) and files and all(_str(f) for f in files), name, "weights.files must list file names")
    _need(_str(w.get("folder")), name, "weights.folder must name a folder (relative to $CXRBENCH_CACHE/zoo/<name>)")
    _need(not Path(w["folder"]).is_absolute() and ".." not in Path(w["folder"]).parts, name,
          "weights.folder must be relative, without '..'")
    if w["source"] == "hf-hub":
        _need(_str(w.get("repo")) and "/" in w["repo"], name, "hf-hub weights need repo ORG/NAME")
        rev = w.get("revision")
        _need(_str(rev), name, "hf-hub weights need a revision (a commit hash, or 'unverified' with revision_note)")
        if rev == UNVERIFIED:
            _need(_str(w.get("revision_note")), name, "revision 'unverified' needs a revision_note saying why")
        else:
            _need(re.fullmatch(r"[0-9a-f]{40}", rev) is not None, name,
                  f"weights.revision must be a 40-hex commit hash or 'unverified', got {rev!r}")
    else:
        _need(_str(w.get("url")), name, "manual weights need url (project page / drive folder)")
        steps = w.get("steps") or []
        _need(isinstance(steps, list) and steps and all(_str(s) for s in steps), name, "manual weights need steps")
    checksums = w.get("checksums") or {}
    _need(isinstance(checksums, dict), name, "weights.checksums must map file -> {sha256|md5: hex}")
    for file, sums in checksums.items():
        _need(isinstance(sums, dict) and sums, name, f"weights.checksums[{file!r}] must be {{sha256|md5: hex}}")
        for algo, value in sums.items():
            _need(algo in HASHES, name, f"weights.checksums[{file!r}]: unknown hash {algo!r} (sha256, md5)")
            _need(isinstance(value, str) and re.fullmatch(rf"[0-9a-f]{{{HASHES[algo]}}}", value) is not None, name,
                  f"weights.checksums[{file!r}].{algo} must be {HASHES[algo]} lower-case hex digits")
    weights = Weights(source=w["source"], files=tuple(files), folder=w["folder"], repo=w.get("repo"),
                      revision=w.get("revision"), revision_note=w.get("revision_note"), url=w.get("url"),
                      steps=tuple(w.get("steps") or ()), checksums={k: dict(v) for k, v in checksums.items()})

    lic = raw["licence"]
    _need(isinstance(lic, dict) and _str(lic.get("name")) and _str(lic.get("url"))
          and isinstance(lic.get("non_commercial"), bool), name, "licence needs name, url and non_commercial (true/false)")
    settings = raw["settings"]
    _need(isinstance(settings, list) and settings and set(settings) <= set(SETTINGS), name,
          f"settings must be a non-empty subset of {', '.join(SETTINGS)}, got {settings!r}")
    rules = raw["zero_shot_rules"]
    _need(isinstance(rules, list) and all(_str(r) for r in rules) and (rules or "zs" not in settings), name,
          "zero_shot_rules must list rule names (the first is the default)")
    _need(len(set(rules)) == len(rules), name, "zero_shot_rules has duplicates")
    reduced = raw.get("reduced") or {}
    _need(isinstance(reduced, dict), name, "reduced must be a mapping of config overrides")
    gaps = raw.get("gaps") or []
    _need(isinstance(gaps, list) and all(isinstance(g, dict) and _str(g.get("text")) for g in gaps), name,
          "gaps must be a list of {text, url}")
    text_tower = raw.get("text_tower")
    _need(text_tower is None or _str(text_tower), name, "text_tower must be a string")
    return ZooEntry(name=name, family=raw["family"], paper=Paper(paper["citation"], paper["url"]),
                    architecture=raw["architecture"], weights=weights,
                    licence=Licence(lic["name"], lic["url"], lic["non_commercial"]), settings=frozenset(settings),
                    zero_shot_rules=tuple(rules), text_tower=text_tower, reduced=dict(reduced),
                    gaps=tuple(Gap(g["text"], g.get("url")) for g in gaps))


def parse_catalog(text: str, source: str = "catalog.yaml") -> dict[str, ZooEntry]:
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise CatalogError(f"{source}: not valid YAML ({exc})") from None
    if not isinstance(raw, dict) or not raw:
        raise CatalogError(f"{source}: must be a mapping name -> entry")
    return {str(name): _parse_entry(str(name), entry) for name, entry in raw.items()}


@lru_cache(maxsize=4)
def load_catalog(path: str | Path = CATALOG_FILE) -> dict[str, ZooEntry]:
    """Every zoo entry (validated), by name."""
    path = Path(path)
    return parse_catalog(path.read_text(encoding="utf-8"), str(path))


def get_entry(name: str) -> ZooEntry:
    catalog = load_catalog()
    if name not in catalog:
        raise KeyError(f"unknown zoo model {name!r}; the zoo has: {', '.join(sorted(catalog))}")
    return catalog[name]


__all__ = ["CATALOG_FILE", "CatalogError", "Gap", "Licence", "Paper", "SETTINGS", "UNVERIFIED", "Weights",
           "ZooEntry", "get_entry", "load_catalog", "parse_catalog"]
