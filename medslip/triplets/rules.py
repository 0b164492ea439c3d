"""Load and compile the rule table (``rules.yaml``) into lookup structures.

The table maps phrases to *tokens* of a few kinds (observation, anatomy head, side, cue, scope stop).
Compilation turns every phrase into a key of space-joined lower-case words and builds one dictionary
``key -> (kind, payload)`` plus, per first word, the longest phrase length, so the scanner does a
greedy longest-match with a handful of dictionary look-ups per word (no per-term regex loop).
Conflicting definitions of the same phrase raise at load time.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from medslip.vocab import ANATOMY_INDEX, OBSERVATION_INDEX, OBSERVATIONS

# Token kinds (small ints: compared in the hot loop).
(OBS, ANAT, SIDE, POSTSIDE, NEG_PRE, NEG_POST, UNC_PRE, UNC_POST, UNC_BOTH, PSEUDO,
 CONJ, VERB, AND, COMMA, IGNORE) = range(15)

#: Word tokenizer shared by rule compilation and scanning: words (with an optional 's suffix) and the
#: punctuation marks that act as scope stops.
WORD_RE = re.compile(r"[a-z0-9]+(?:'[a-z]+)?|[,;:/]")

_COPULAS = ("is", "are", "was", "were", "has been", "have been", "had been", "be", "is now", "are now")
_SIDES = ("left", "right", "both")

Side = str  # "left" | "right" | "both"


def phrase_words(phrase: str) -> list[str]:
    """Lower-case word tokens of a phrase or sentence (hyphens and spaces are both word breaks)."""
    return WORD_RE.findall(phrase.lower())


def _expand(phrase: str) -> list[str]:
    """``"effusion(s)"`` -> ``["effusion", "effusions"]``; other phrases are returned as they are."""
    for suffix in ("(s)", "(es)"):
        if phrase.endswith(suffix):
            stem = phrase[: -len(suffix)]
            return [stem, stem + suffix[1:-1]]
    return [phrase]


@dataclass(frozen=True)
class AnatomyHead:
    """One anatomy head: anatomy lists per side, and the variant used for pleural observations."""

    name: str
    lists: dict[str, tuple[str, ...]]
    pleural: dict[str, tuple[str, ...]] | None = None
    side: Side | None = None  # a head that names a side itself ("biapical"): passed to the heads beside it
    joins: bool = True  # False: a property, not a place ("lung volumes"): never grouped with other heads
    organ: bool = False  # the whole organ ("lung", "pulmonary"): unsided before a finding, it yields to the
    # finding's located-at phrase ("lung nodule in the right upper lobe" is in the right upper lobe only)
    shared: bool = False  # like a lung region, the head of a finding is shared with a finding joined to it by
    # "and" ("aortic calcifications and tortuosity": both at the aorta)

    def resolve(self, side: Side | None, pleural: bool) -> tuple[str, ...]:
        """Anatomies named by this head with an optional side, for a (non-)pleural observation."""
        table = self.pleural if (pleural and self.pleural) else self.lists
        return _by_side(table, side) or _by_side(self.lists, side)


def _by_side(table: dict[str, tuple[str, ...]], side: Side | None) -> tuple[str, ...]:
    if side is None:
        return table.get("none", ())
    if side == "both":
        if "both" in table:
            return table["both"]
        both = table.get("left", ()) + table.get("right", ())
        return both or table.get("none", ())
    return table.get(side) or table.get("none", ())


@dataclass
class Rules:
    """The compiled rule table."""

    table: dict[str, tuple[int, Any]] = field(default_factory=dict)
    #: the table's phrases as a word trie: word -> node; a node's ``None`` entry holds the phrase's (kind, payload)
    trie: dict = field(default_factory=dict)
    heads: list[AnatomyHead] = field(default_factory=list)
    keep_sections: frozenset[str] = frozenset()
    drop_sections: frozenset[str] = frozenset()
    pleural_observations: frozenset[str] = frozenset()
    side_default: dict[str, tuple[str, ...]] = field(default_factory=dict)
    observation_defaults: dict[str, dict[str, tuple[str, ...]]] = field(default_factory=dict)
    combine: list[tuple[str, frozenset[str], str, tuple[str, ...]]] = field(default_factory=list)
    prepositions: frozenset[str] = frozenset()
    max_prep_gap: int = 4
    prep_reach: int = 2
    normal: frozenset[str] = frozenset(OBSERVATIONS[:8])
    modifier_words: frozenset[str] = frozenset()
    normality_predicates: frozenset[str] = frozenset()
    masks: frozenset[str] = frozenset()
    appositive_hosts: frozenset[str] = frozenset()
    postposed: frozenset[str] = frozenset()
    object_observations: frozenset[str] = frozenset()
    part_of: frozenset[str] = frozenset()
    part_of_gap: int = 8
    measure_words: frozenset[str] = frozenset()
    distribution_words: frozenset[str] = frozenset()
    ordinals: frozenset[str] = frozenset()
    joined_masks: dict[str, str] = field(default_factory=dict)
    #: first word -> [(words of a phrase with masks, the words it reads as)], longest first
    mask_phrases: dict[str, list[tuple[tuple[str, ...], tuple[str, ...]]]] = field(default_factory=dict)
    #: lower-cased, stripped sentence -> its matrix cells ``((flat cell index, 1 | 0), ...)``, filled by the matrix
    #: path of ``medslip.triplets.extract`` (real reports repeat sentences: the 24,454 sentences of the IU reports
    #: are 8,615 distinct ones); at most ``sentence_cache_size`` entries, emptied when full or when a phrase is added
    sentence_cache: dict[str, tuple] = field(default_factory=dict, repr=False, compare=False)
    sentence_cache_size: int = 1 << 17

    def add(self, phrase: str, kind: int, payload: Any, where: str) -> None:
        """Register one phrase (with its (s)/(es) expansion); a conflicting re-definition raises."""
        if not isinstance(phrase, str):  # YAML reads a bare no / on / yes as a boolean
            raise ValueError(f"rules: {phrase!r} in {where} is not a string (quote it in the YAML)")
        self.sentence_cache.clear()
        for form in _expand(phrase.strip()):
            words = phrase_words(form)
            if not words:
                raise ValueError(f"rules: empty phrase {phrase!r} in {where}")
            key = " ".join(words)
            old = self.table.get(key)
            if old is not None and old != (kind, payload):
                raise ValueError(f"rules: phrase {key!r} ({where}) conflicts with an earlier definition {old}")
            self.table[key] = (kind, payload)
            node = self.trie
            for w in words:
                node = node.setdefault(w, {})
            node[None] = (kind, payload)

    def matches(self, words: list[str], i: int) -> list[tuple[int, tuple[int, Any]]]:
        """Every phrase of the table that starts at ``words[i]``: ``(number of words, (kind, payload))``, shortest
        first (the last is the longest match)."""
        out: list[tuple[int, tuple[int, Any]]] = []
        node = self.trie
        for j in range(i, len(words)):
            node = node.get(words[j])
            if node is None:
                break
            if None in node:
                out.append((j + 1 - i, node[None]))
        return out

    def default_anatomies(self, observation: str, side: Side | None) -> tuple[str, ...]:
        """Anatomy of an observation whose sentence names none (see ``observation_defaults``)."""
        rule = self.observation_defaults.get(observation, {})
        if side is not None:
            got = _by_side(rule, side) if (side in rule or (side == "both" and "left" in rule)) else ()
            return got or _by_side(self.side_default, side) or ("unspecified",)
        return rule.get("none") or ("unspecified",)


def _check_anatomies(names: list[str], where: str) -> tuple[str, ...]:
    for name in names:
        if name not in ANATOMY_INDEX:
            raise ValueError(f"rules: unknown anatomy {name!r} in {where}")
    return tuple(names)


def _check_observation(name: str, where: str) -> str:
    if name not in OBSERVATION_INDEX:
        raise ValueError(f"rules: unknown observation {name!r} in {where}")
    return name


def _side_table(entry: dict[str, Any], where: str) -> dict[str, tuple[str, ...]]:
    return {k: _check_anatomies(v, where) for k, v in entry.items() if k in ("none",) + _SIDES}


def compile_rules(raw: dict[str, Any]) -> Rules:
    """Compile a parsed rule table (the structure of ``rules.yaml``) into :class:`Rules`."""
    r = Rules()
    sec = raw.get("sections", {})
    r.keep_sections = frozenset(" ".join(s.upper().split()) for s in sec.get("keep", []))
    r.drop_sections = frozenset(" ".join(s.upper().split()) for s in sec.get("drop", []))

    # Longer, more specific kinds first is not needed: conflicts raise instead.
    for obs, forms in raw["observations"].items():
        _check_observation(obs, "observations")
        for f in forms:
            r.add(f, OBS, obs, f"observations.{obs}")
    for f in raw.get("tail_abnorm_obs", []):
        r.add(f, OBS, "tail_abnorm_obs", "tail_abnorm_obs")
    for f in raw.get("excluded_obs", []):
        r.add(f, OBS, "excluded_obs", "excluded_obs")
    for f in raw.get("ignore", []):
        r.add(f, IGNORE, None, "ignore")

    for i, entry in enumerate(raw["anatomies"]):
        where = f"anatomies[{i}] {entry['phrases'][0]!r}"
        head = AnatomyHead(
            name=entry["phrases"][0],
            lists=_side_table(entry, where),
            pleural=_side_table(entry["pleural"], where) if "pleural" in entry else None,
            side=entry.get("side"),
            joins=bool(entry.get("joins", True)),
            organ=bool(entry.get("organ", False)),
            shared=bool(entry.get("shared", False)),
        )
        if head.side not in (None,) + _SIDES:
            raise ValueError(f"rules: {where} has side {head.side!r} (left, right or both)")
        if not head.lists.get("none") and not head.lists.get("left"):
            raise ValueError(f"rules: {where} names no anatomy")
        r.heads.append(head)
        for f in entry["phrases"]:
            r.add(f, ANAT, len(r.heads) - 1, where)

    for side, forms in raw.get("sides", {}).items():
        for f in forms:
            r.add(f, SIDE, side, f"sides.{side}")
    for side, forms in raw.get("postfix_sides", {}).items():
        for f in forms:
            r.add(f, POSTSIDE, side, f"postfix_sides.{side}")

    cues = raw.get("cues", {})
    emits = {" ".join(phrase_words(k)): _check_observation(v, "cues.emits") for k, v in cues.get("emits", {}).items()}
    for f in cues.get("negation_pre", []):
        r.add(f, NEG_PRE, None, "cues.negation_pre")
    for f, obs in emits.items():
        r.add(f, NEG_PRE, obs, "cues.emits")
    for name, kind in (("negation_post", NEG_POST), ("uncertain_post", UNC_POST)):
        for f in cues.get(name, []):
            r.add(f, kind, None, f"cues.{name}")
            for cop in _COPULAS:  # "effusion is not seen": the copula belongs to the cue
                r.add(f"{cop} {f}", kind, None, f"cues.{name}")
    for name, kind in (("uncertain_pre", UNC_PRE), ("uncertain_both", UNC_BOTH), ("pseudo", PSEUDO)):
        for f in cues.get(name, []):
            r.add(f, kind, None, f"cues.{name}")
    for f in cues.get("pseudo_stop", []):  # "no change in X": also ends an earlier pre cue's scope
        r.add(f, PSEUDO, "stop", "cues.pseudo_stop")

    scope = raw.get("scope", {})
    for name, kind in (("conj", CONJ), ("verb", VERB), ("and", AND), ("comma", COMMA)):
        for f in scope.get(name, []):
            r.add(f, kind, None, f"scope.{name}")
    for f in scope.get("relative", []):
        r.add(f, CONJ, "relative", "scope.relative")
    for f in scope.get("alternative", []):  # "atelectasis or scarring": joins like "and", hedges a finding
        r.add(f, AND, "/" if f == "/" else "or", "scope.alternative")

    r.pleural_observations = frozenset(_check_observation(o, "pleural_observations")
                                       for o in raw.get("pleural_observations", []))
    r.side_default = _side_table(raw.get("side_default", {}), "side_default")
    r.observation_defaults = {_check_observation(o, "observation_defaults"): _side_table(v, f"observation_defaults.{o}")
                              for o, v in raw.get("observation_defaults", {}).items()}
    for c in raw.get("combine", []):
        r.combine.append((_check_observation(c["observation"], "combine"),
                          frozenset(_check_anatomies(c["anatomies"], "combine")),
                          _check_observation(c["becomes"], "combine"),
                          _check_anatomies(c["at"], "combine")))
    r.prepositions = frozenset(phrase_words(p)[0] for p in raw.get("prepositions", []))
    r.max_prep_gap = int(raw.get("max_prep_gap", 4))
    r.prep_reach = int(raw.get("prep_reach", 2))
    r.ordinals = frozenset(w for f in raw.get("ordinals", []) for w in phrase_words(f))
    r.modifier_words = frozenset(w for f in raw.get("modifier_words", []) for w in phrase_words(f)) | r.ordinals
    r.normality_predicates = frozenset(_check_observation(o, "normality_predicates")
                                       for o in raw.get("normality_predicates", []))
    r.appositive_hosts = frozenset(_check_observation(o, "appositive_hosts")
                                   for o in raw.get("appositive_hosts", []))
    r.part_of = frozenset(phrase_words(w)[0] for w in raw.get("part_of", []))
    r.part_of_gap = int(raw.get("part_of_gap", r.max_prep_gap))
    r.measure_words = frozenset(w for f in raw.get("measure_words", []) for w in phrase_words(f))
    r.distribution_words = frozenset(w for f in raw.get("distribution_words", []) for w in phrase_words(f))
    r.postposed = frozenset(_check_observation(o, "postposed") for o in raw.get("postposed", []))
    r.object_observations = frozenset(_check_observation(o, "object_observations")
                                      for o in raw.get("object_observations", []))
    masks = raw.get("deidentification", {})
    r.masks = frozenset(m.lower() for m in masks.get("masks", []))
    r.joined_masks = {k.lower(): " ".join(phrase_words(v)) for k, v in masks.get("joined", {}).items()}
    for k, v in (masks.get("phrases") or {}).items():
        words = tuple(phrase_words(k))
        if not any(w in r.masks for w in words):
            raise ValueError(f"rules: deidentification.phrases key {k!r} holds no mask")
        r.mask_phrases.setdefault(words[0], []).append((words, tuple(phrase_words(v or ""))))
    for v in r.mask_phrases.values():
        v.sort(key=lambda e: -len(e[0]))
    return r


def load_raw(path: str | Path | None = None) -> dict[str, Any]:
    """Parse a rule file (default: the ``rules.yaml`` shipped in this package)."""
    if path is None:
        text = resources.files("medslip.triplets").joinpath("rules.yaml").read_text(encoding="utf-8")
    else:
        text = Path(path).read_text(encoding="utf-8")
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return yaml.load(text, Loader=loader)


@functools.lru_cache(maxsize=None)
def default_rules() -> Rules:
    """The compiled packaged rule table (compiled once per process)."""
    return compile_rules(load_raw())
