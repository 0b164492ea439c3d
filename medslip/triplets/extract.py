"""Report text -> mentions -> the 51 x 75 anatomy x observation matrix.

Pipeline (one pass per sentence, no per-term regex loop):

1. :func:`sections` picks the text to read (FINDINGS / IMPRESSION of a MIMIC-style report, else the
   whole text without clinical-history sections).
2. The text is cut into sentences; each sentence is lower-cased and split into word tokens.
3. A greedy longest-match over the compiled rule table (``rules.yaml``) turns words into tokens:
   observations, anatomy heads, side words, negation / uncertainty cues and scope stops.
4. Sides are folded into the anatomy head or observation right after them.
5. Status: forward scopes for pre-cues ("no", "possible"), backward scopes for post-cues ("is not
   seen", "cannot be excluded"), clause scopes for "versus".
6. Anatomy: a following located-at phrase ("opacity in the left lower lobe"), else the nearest
   preceding anatomy in the clause ("the lungs are clear"), else an adjacent following one
   ("enlarged heart"), else the observation's default (``observation_defaults``) or ``unspecified``.
7. The matrix: start at -1; a present mention sets 1; an absent mention sets 0 unless the cell is 1;
   an uncertain mention changes nothing (the published semantics).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from medslip.triplets.rules import (
    AND, ANAT, COMMA, CONJ, IGNORE, NEG_POST, NEG_PRE, OBS, POSTSIDE, SIDE, UNC_BOTH, UNC_POST, UNC_PRE,
    VERB, WORD_RE, Rules, default_rules,
)
from medslip.vocab import ANATOMY_INDEX, NUM_ANATOMIES, NUM_OBSERVATIONS, OBSERVATION_INDEX

PRESENT, ABSENT, UNCERTAIN = "present", "absent", "uncertain"
_STATUS_VALUE = {PRESENT: 1, ABSENT: 0}

# A section header at the start of a line: "FINDINGS:", " IMPRESSION:", "FINDINGS AND IMPRESSION:".
_HEADER_RE = re.compile(r"^[ \t]*([A-Z][A-Z ()/&,-]*[A-Z)])[ \t]*:", re.MULTILINE)
# A sentence: anything up to ". " / "? " / "! " or a blank line; "vs." and decimals do not end it.
_SENTENCE_RE = re.compile(r"(?:[^.?!\n]|(?<=\bvs)\.|\.(?!\s|$)|\n(?![ \t]*\n))+[.?!]?")


@dataclass(frozen=True)
class Mention:
    """One observation at one anatomy with a status, and where it was read.

    ``span`` is the (start, end) character range of the observation phrase in ``sections(text)``.
    """

    observation: str
    anatomy: str
    status: str  # "present" | "absent" | "uncertain"
    sentence: str
    span: tuple[int, int]


def _header_name(raw: str) -> str:
    return " ".join(raw.split())


def sections(text: str, rules: Rules | None = None) -> str:
    """The part of a report that is read: the FINDINGS and IMPRESSION bodies, in document order.

    ``FINDINGS AND IMPRESSION:`` and a few variants (``rules.yaml`` ``sections.keep``) count too. When
    the report has none of them, the whole text is used minus the sections listed in
    ``sections.drop`` (INDICATION, HISTORY, COMPARISON, TECHNIQUE, ...) and the bare FINAL REPORT
    title (possibly nothing); a text without any ``NAME:`` header is read whole. Bodies are joined
    with a blank line, so a sentence never spans two sections.
    """
    r = rules or default_rules()
    heads = list(_HEADER_RE.finditer(text))
    if not heads:
        return text.strip()
    bodies: list[tuple[str, str]] = [("", text[: heads[0].start()])]
    for k, m in enumerate(heads):
        end = heads[k + 1].start() if k + 1 < len(heads) else len(text)
        bodies.append((_header_name(m.group(1)), text[m.end(): end]))
    kept = [b.strip() for name, b in bodies if name in r.keep_sections and b.strip()]
    if kept:
        return "\n\n".join(kept)
    rest = [b.strip() for name, b in bodies if name not in r.drop_sections and b.strip()]
    rest = [b for b in rest if b.upper() != "FINAL REPORT"]
    return "\n\n".join(rest)


def _lower_same_length(text: str) -> str:
    low = text.lower()
    if len(low) == len(text):
        return low
    return "".join(c.lower() if len(c.lower()) == 1 else c for c in text)


def _scan(words: list[str], r: Rules) -> list[list]:
    """Greedy longest-match of the rule table over word tokens.

    Returns tokens ``[kind, payload, first_word, end_word, side]`` (IGNORE phrases are consumed and
    dropped; a cue that also states an observation, e.g. "clear of", yields an OBS then the cue).
    """
    table, first = r.table, r.first
    toks: list[list] = []
    i, n = 0, len(words)
    while i < n:
        maxn = first.get(words[i])
        if maxn is None:
            i += 1
            continue
        k = min(maxn, n - i)
        while k:
            hit = table.get(words[i] if k == 1 else " ".join(words[i:i + k]))
            if hit is not None:
                kind, payload = hit
                if kind == NEG_PRE and payload is not None:
                    toks.append([OBS, payload, i, i + k, None])
                    toks.append([NEG_PRE, None, i, i + k, None])
                elif kind != IGNORE:
                    toks.append([kind, payload, i, i + k, None])
                break
            k -= 1
        i += k if k else 1
    return toks


def _fold_sides(toks: list[list]) -> list[list]:
    """Attach side words to the adjacent following anatomy head / observation; apply postfix sides."""
    out: list[list] = []
    pending, pend_start, pend_end = None, -1, -1
    for t in toks:
        kind = t[0]
        if kind == SIDE:
            if pending is None or t[2] != pend_end:
                pend_start = t[2]
            pending, pend_end = t[1], t[3]
            continue
        if kind == POSTSIDE:
            for prev in reversed(out):
                if prev[0] in (ANAT, OBS):
                    if prev[4] is None and t[2] - prev[3] <= 3:
                        prev[4] = t[1]
                    break
                if prev[0] in (CONJ, COMMA):
                    break
            pending = None
            continue
        if pending is not None and t[2] == pend_end and kind in (ANAT, OBS):
            t[4], t[2] = pending, pend_start  # the side word becomes part of the phrase
        pending = None
        out.append(t)
    return out


def _statuses(toks: list[list], r: Rules) -> dict[int, str]:
    """Status of every observation token (index -> present / absent / uncertain)."""
    status: dict[int, str] = {}
    active: str | None = None
    crossed_comma = False
    for idx, t in enumerate(toks):
        kind = t[0]
        if kind == OBS:
            if active is not None and crossed_comma and t[1] in r.normal:
                active = None  # "no effusion, lungs clear": a normal statement starts a new clause
            status[idx] = active or PRESENT
        elif kind == NEG_PRE:
            active, crossed_comma = ABSENT, False
        elif kind == UNC_PRE:
            if not (active == ABSENT and not crossed_comma):  # "no findings to suggest pneumonia"
                active, crossed_comma = UNCERTAIN, False
        elif kind in (CONJ, VERB):
            active = None
        elif kind == COMMA:
            crossed_comma = True
    n = len(toks)
    for idx, t in enumerate(toks):
        kind = t[0]
        if kind in (NEG_POST, UNC_POST):
            value = ABSENT if kind == NEG_POST else UNCERTAIN
            collected: list[int] = []
            crossed_and: int | None = None
            j = idx - 1
            while j >= 0:
                k = toks[j][0]
                if k in (CONJ, COMMA, NEG_PRE, UNC_PRE, UNC_BOTH, NEG_POST, UNC_POST):
                    break
                if k == VERB:
                    if crossed_and is not None:  # "heart is enlarged and effusion is not seen"
                        collected = collected[:crossed_and]
                    break
                if k == OBS:
                    collected.append(j)
                elif k == AND:
                    crossed_and = len(collected)
                j -= 1
            for j in collected:
                status[j] = value
        elif kind == UNC_BOTH:  # "atelectasis versus pneumonia": the whole clause
            for step in (-1, 1):
                j = idx + step
                while 0 <= j < n and toks[j][0] not in (CONJ, COMMA, VERB):
                    if toks[j][0] == OBS:
                        status[j] = UNCERTAIN
                    j += step
    return status


def _anatomy_group(toks: list[list], j: int, step: int) -> list[int]:
    """Anatomy token j plus the anatomy tokens joined to it by "and" / "or" (or adjacent)."""
    group = [j]
    n = len(toks)
    while True:
        if 0 <= j + step < n and toks[j + step][0] == ANAT:
            j += step
        elif 0 <= j + 2 * step < n and toks[j + step][0] == AND and toks[j + 2 * step][0] == ANAT:
            j += 2 * step
        else:
            return group
        group.append(j)


def _locate(toks: list[list], idx: int, words: list[str], r: Rules) -> list[int]:
    """Anatomy tokens giving the location of observation token idx (empty: none named)."""
    n = len(toks)
    t = toks[idx]
    # 1. a following located-at phrase: "opacity (is seen) in the right lower lobe"
    j, end, skipped = idx + 1, t[3], False
    while j < n and toks[j][0] == VERB:
        end, skipped, j = toks[j][3], True, j + 1
    adjacent_after: list[int] = []
    if j < n and toks[j][0] == ANAT:
        gap = words[end:toks[j][2]]
        if gap and len(gap) <= r.max_prep_gap and (gap[0] in r.prepositions or (
                len(gap) > 1 and gap[1] in r.prepositions)):  # "tube terminates in the trachea"
            return _anatomy_group(toks, j, 1)
        if not gap and not skipped:
            adjacent_after = _anatomy_group(toks, j, 1)
    # 2. the nearest preceding anatomy in the clause: "the lungs are clear"; an observation that is
    # itself a subject ("... and effusion is not seen") does not reach back over "and".
    subject = idx + 1 < n and toks[idx + 1][0] in (VERB, NEG_POST, UNC_POST)
    j = idx - 1
    while j >= 0:
        k = toks[j][0]
        if k in (CONJ, COMMA) or (subject and k == AND):
            break
        if k == ANAT:
            nxt = toks[j + 1]
            if j + 1 != idx and nxt[0] == OBS and nxt[2] == toks[j][3]:
                break  # "pleural effusion or pneumothorax": "pleural" belongs to the effusion
            return _anatomy_group(toks, j, -1)
        j -= 1
    # 3. an adjacent following head: "enlarged heart", "low lung volumes"
    return adjacent_after


def _sentence_mentions(sent: str, low: str, offset: int, r: Rules) -> list[Mention]:
    """Mentions of one sentence; ``sent``/``low`` are its original / lower-cased text at ``offset``."""
    matches = list(WORD_RE.finditer(low))
    if not matches:
        return []
    words = [m.group() for m in matches]
    toks = _fold_sides(_scan(words, r))
    if not any(t[0] == OBS for t in toks):
        return []
    status = _statuses(toks, r)
    sentence = " ".join(sent.split())
    heads = r.heads
    # Right to left, so that a modifier ("stable", "calcified") adjacent to the observation after it
    # ("calcified granuloma in the right lower lobe") takes that observation's location.
    located: dict[int, list[str]] = {}
    for idx in range(len(toks) - 1, -1, -1):
        t = toks[idx]
        if t[0] != OBS:
            continue
        pleural = t[1] in r.pleural_observations
        anatomies: list[str] = []
        for a in _locate(toks, idx, words, r):
            for name in heads[toks[a][1]].resolve(toks[a][4], pleural):
                if name not in anatomies:
                    anatomies.append(name)
        if not anatomies and idx + 1 < len(toks) and toks[idx + 1][0] == OBS and toks[idx + 1][2] == t[3]:
            anatomies = [a for a in located[idx + 1] if a != "unspecified"]
        located[idx] = anatomies or list(r.default_anatomies(t[1], t[4]))
    out: list[Mention] = []
    for idx, t in enumerate(toks):
        if t[0] != OBS:
            continue
        obs, anatomies = t[1], located[idx]
        span = (offset + matches[t[2]].start(), offset + matches[t[3] - 1].end())
        st = status[idx]
        pairs = [(obs, a) for a in anatomies]
        for c_obs, c_anats, becomes, at in r.combine:
            if obs == c_obs and any(a in c_anats for a in anatomies):
                pairs = [(obs, a) for a in anatomies if a not in c_anats] + [(becomes, a) for a in at]
        for o, a in pairs:
            out.append(Mention(o, a, st, sentence, span))
    return out


def extract_mentions(text: str, rules: Rules | None = None) -> list[Mention]:
    """All (observation, anatomy, status) mentions of a report, each with its sentence and span.

    The text read is :func:`sections` of ``text``; spans index into that string.
    """
    r = rules or default_rules()
    body = sections(text, r)
    low = _lower_same_length(body)
    out: list[Mention] = []
    for m in _SENTENCE_RE.finditer(low):
        s, e = m.span()
        out.extend(_sentence_mentions(body[s:e], low[s:e], s, r))
    return out


def mentions_to_matrix(mentions: list[Mention]) -> np.ndarray:
    """The int8 (51, 75) matrix: 1 present; 0 absent unless present in the same cell; else -1."""
    mat = np.full((NUM_ANATOMIES, NUM_OBSERVATIONS), -1, dtype=np.int8)
    for m in mentions:
        v = _STATUS_VALUE.get(m.status)
        if v is None:
            continue
        a, o = ANATOMY_INDEX[m.anatomy], OBSERVATION_INDEX[m.observation]
        if v == 1 or mat[a, o] != 1:
            mat[a, o] = v
    return mat


def report_to_matrix(text: str, rules: Rules | None = None) -> np.ndarray:
    """Report text -> int8 array (51 anatomies, 75 observations) with values in {-1, 0, 1}."""
    return mentions_to_matrix(extract_mentions(text, rules))
