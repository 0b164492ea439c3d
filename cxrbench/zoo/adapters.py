"""What every zoo adapter shares: the random-weights convention, the rule choice and the record fields.

- ``--checkpoint random`` gives random weights of the released architecture, ``--checkpoint random-reduced`` the
  catalog's small ``reduced`` configuration (tests), for every zoo model; :func:`random_kind` tells them apart.
  The older per-family spellings of the reduced model (``random:reduced``, ``random:small``, ``random:resnet18``)
  are read as ``random-reduced`` (:func:`canonical_checkpoint`).
- :func:`choose_rule` validates ``--zero-shot-rule`` against the catalog (first = default).
- :func:`zoo_identity` is the common part of ``describe()``: ``zoo: True``, ``zoo_name``, ``weights``
  ("released" or "random"), ``checkpoint`` / ``checkpoint_sha256`` (one file: its sha256; an ensemble: the
  sha256 of its files' sorted sha256 digests, each also listed in ``checkpoints_sha256``), ``zero_shot_rule``,
  the licence and the paper. The leaderboard refuses zoo records whose ``weights`` is "random".
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Sequence

from cxrbench.models.base import file_sha256
from cxrbench.zoo.catalog import ZooEntry, get_entry

class ZooWeightsMissing(FileNotFoundError):
    """A zoo model's checkpoint (or a file it needs) is not on this machine; the message says how to get it."""


RANDOM = "random"
RANDOM_REDUCED = "random-reduced"
#: earlier spellings of ``random-reduced`` (MedCLIP, GLoRIA, MedKLIP), still accepted
REDUCED_ALIASES = ("random:reduced", "random:small", "random:resnet18")


def canonical_checkpoint(checkpoint: str | Path | None) -> str | Path | None:
    """``checkpoint`` with an old spelling of the reduced random model replaced by ``random-reduced``."""
    return RANDOM_REDUCED if checkpoint is not None and str(checkpoint) in REDUCED_ALIASES else checkpoint


def random_kind(checkpoint: str | Path | None) -> str | None:
    """``"random"`` / ``"random-reduced"`` when the checkpoint asks for random weights, else None."""
    text = str(canonical_checkpoint(checkpoint)) if checkpoint is not None else None
    return text if text in (RANDOM, RANDOM_REDUCED) else None


def split_checkpoints(checkpoint: str | Path,
                      suffixes: Sequence[str] = (".pt", ".pth", ".bin", ".ckpt", ".safetensors")) -> list[Path]:
    """``a.pt,b.pt`` or a folder (its files with ``suffixes``, sorted) -> the checkpoint files, sorted by path."""
    parts = [p.strip() for p in str(checkpoint).split(",") if p.strip()]
    files: list[Path] = []
    for part in parts:
        path = Path(part).expanduser()
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.is_file() and p.suffix in suffixes)
            if not found:
                raise ZooWeightsMissing(f"no checkpoint ({', '.join(suffixes)}) in folder {path}")
            files += found
        elif path.is_file():
            files.append(path)
        else:
            raise ZooWeightsMissing(f"checkpoint not found: {path}")
    if not files:
        raise ZooWeightsMissing(f"no checkpoint given ({checkpoint!r})")
    return sorted(files, key=str)


def choose_rule(entry: ZooEntry, rule: str | None) -> str:
    if rule is None:
        return entry.default_rule
    if rule not in entry.zero_shot_rules:
        raise ValueError(f"zero-shot rule {rule!r} is not one of {entry.name}'s: {', '.join(entry.zero_shot_rules)}")
    return rule


def ensemble_sha256(files: Sequence[str | Path]) -> tuple[str | None, list[str]]:
    """(the record's checkpoint_sha256, the per-file digests) of one file or an ensemble."""
    digests = [file_sha256(f) for f in files]
    if not digests:
        return None, []
    if len(digests) == 1:
        return digests[0], digests
    combined = hashlib.sha256("\n".join(sorted(digests)).encode()).hexdigest()
    return combined, digests


def zoo_identity(name: str, files: Sequence[str | Path] | None, rule: str, random: str | None = None,
                 **extra: Any) -> dict[str, Any]:
    """The record fields every zoo adapter's ``describe()`` starts with."""
    entry = get_entry(name)
    files = list(files or [])
    sha, digests = ensemble_sha256(files) if files else (None, [])
    out: dict[str, Any] = {
        "name": name, "zoo": True, "zoo_name": name, "family": entry.family,
        "weights": "random" if random else "released",
        "random_weights": bool(random), "random_config": random,
        "checkpoint": ",".join(str(f) for f in files) if files else None,
        "checkpoint_sha256": sha,
        "zero_shot_rule": rule,
        "paper": entry.paper.url, "licence": entry.licence.name, "non_commercial": entry.licence.non_commercial,
    }
    if len(files) > 1:
        out["checkpoints"] = [str(f) for f in files]
        out["checkpoints_sha256"] = digests
        out["checkpoint_sha256_rule"] = "sha256 of the sorted per-file sha256 digests, joined by newlines"
    out.update(extra)
    return out


__all__ = ["RANDOM", "RANDOM_REDUCED", "REDUCED_ALIASES", "ZooWeightsMissing", "canonical_checkpoint", "choose_rule", "ensemble_sha256", "random_kind", "split_checkpoints",
           "zoo_identity"]
