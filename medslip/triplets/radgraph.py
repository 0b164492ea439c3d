"""RadGraph JSON -> the same 51 x 75 matrix, with the published semantics.

Input: the PhysioNet RadGraph layout (``MIMIC-CXR_graphs.json``; ``data-formats.md`` 7.5): an object
``{report key: {"text": ..., "entities": {id: {"tokens", "label", "start_ix", "end_ix",
"relations": [[type, target id], ...]}}}}``. Annotation files that nest the entities under
``labeler_1`` / ``labeler_2`` are read from ``labeler_1``.

Semantics (as the published ``adj_matrix.py``): every cell starts at -1; an ``OBS-DP`` entity sets its
cells to 1; ``OBS-DA`` sets them to 0 unless already 1; ``OBS-U`` (and ``OBS-NA`` or any other label)
leaves them alone. The observation is the entity's tokens looked up in the rule table's observation
phrases (synonyms and lemma fixes included); a term the table does not know falls to
``tail_abnorm_obs``. The anatomy comes from the entity's ``located_at`` relations: the target ANAT
entity's tokens, together with the ANAT entities that ``modify`` it ("left", "lower"), read through the
rule table's anatomy heads and sides; a phrase that names no known anatomy falls to ``other``; an
observation without ``located_at`` goes to ``unspecified``. Unlike the text extractor, no
``combine`` rule is applied (``enlarged`` at ``heart`` stays ``enlarge``), as in the published data.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np

from medslip.triplets.extract import ABSENT, PRESENT, UNCERTAIN, Mention, mentions_to_matrix
from medslip.triplets.rules import ANAT, OBS, SIDE, Rules, default_rules, phrase_words

_LABEL_STATUS = {"OBS-DP": PRESENT, "OBS-DA": ABSENT, "OBS-U": UNCERTAIN}


def _entities(entry: Mapping[str, Any]) -> Mapping[str, Any]:
    if "entities" in entry:
        return entry["entities"]
    for labeler in ("labeler_1", "labeler_2"):
        if labeler in entry and "entities" in entry[labeler]:
            return entry[labeler]["entities"]
    raise ValueError("RadGraph entry has no 'entities' (nor labeler_1/labeler_2 entities)")


def observation_of(tokens: str, rules: Rules | None = None) -> str:
    """Observation term for an OBS entity's tokens; unknown terms fall to ``tail_abnorm_obs``."""
    r = rules or default_rules()
    words = phrase_words(tokens)
    i, n = 0, len(words)
    while i < n:  # the first observation phrase in the tokens, longest match
        for _, (kind, payload) in reversed(r.matches(words, i)):
            if kind == OBS:
                return payload
        i += 1
    return "tail_abnorm_obs"


def anatomies_of(tokens: str, rules: Rules | None = None, observation: str | None = None) -> list[str]:
    """Anatomies named by an anatomy phrase ("left lower lobe"); ``["other"]`` when none is known."""
    r = rules or default_rules()
    words = phrase_words(tokens)
    side: str | None = None
    out: list[str] = []
    pleural = observation in r.pleural_observations
    i, n = 0, len(words)
    while i < n:
        found = r.matches(words, i)
        if not found:
            i += 1
            continue
        k, (kind, payload) = found[-1]  # the longest match
        if kind == SIDE:
            side = payload if side is None or side == payload else "both"
        elif kind == ANAT:
            for a in r.heads[payload].resolve(side, pleural):
                if a not in out:
                    out.append(a)
            side = None
        i += k
    if not out and side is not None:  # a bare side ("left") names the lung on that side
        out = list(r.side_default.get(side, ())) if side != "both" else ["left_lung_unspec", "right_lung_unspec"]
    return out or ["other"]


def radgraph_mentions(entry: Mapping[str, Any], rules: Rules | None = None) -> list[Mention]:
    """Mentions of one RadGraph report entry (sentence = the entity's tokens; span = token indices)."""
    r = rules or default_rules()
    ents = _entities(entry)
    modifiers: dict[str, list[str]] = {}  # anatomy id -> ids of ANAT entities that modify it
    for eid, e in ents.items():
        if str(e.get("label", "")).startswith("ANAT"):
            for rel, target in e.get("relations", []):
                if rel == "modify":
                    modifiers.setdefault(str(target), []).append(str(eid))
    out: list[Mention] = []
    for eid, e in ents.items():
        label = str(e.get("label", ""))
        if not label.startswith("OBS"):
            continue
        status = _LABEL_STATUS.get(label, UNCERTAIN)
        obs = observation_of(e["tokens"], r)
        anatomies: list[str] = []
        for rel, target in e.get("relations", []):
            target = str(target)
            if rel != "located_at" or target not in ents:
                continue
            ids = [target] + [m for m in modifiers.get(target, []) if m in ents]
            ids.sort(key=lambda i: int(ents[i].get("start_ix", 0)))
            phrase = " ".join(ents[i]["tokens"] for i in ids)
            for a in anatomies_of(phrase, r, obs):
                if a not in anatomies:
                    anatomies.append(a)
        span = (int(e.get("start_ix", -1)), int(e.get("end_ix", -1)) + 1)
        for a in anatomies or ["unspecified"]:
            out.append(Mention(obs, a, status, e["tokens"], span))
    return out


def radgraph_entry_to_matrix(entry: Mapping[str, Any], rules: Rules | None = None) -> np.ndarray:
    """One RadGraph report entry -> int8 (51, 75) matrix."""
    return mentions_to_matrix(radgraph_mentions(entry, rules))


def iter_radgraph(data: Mapping[str, Any] | str | Path,
                  rules: Rules | None = None) -> Iterator[tuple[str, np.ndarray]]:
    """``(report key, matrix)`` for every report of a RadGraph JSON (a path or the parsed object)."""
    if not isinstance(data, Mapping):
        with open(data, encoding="utf-8") as f:
            data = json.load(f)
    for key, entry in data.items():
        yield key, radgraph_entry_to_matrix(entry, rules)


def radgraph_to_matrices(data: Mapping[str, Any] | str | Path, rules: Rules | None = None) -> dict[str, np.ndarray]:
    """All reports of a RadGraph JSON -> ``{report key: int8 (51, 75) matrix}`` in file order."""
    return dict(iter_radgraph(data, rules))
