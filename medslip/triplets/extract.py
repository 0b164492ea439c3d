"""Report text -> mentions -> the 51 x 75 anatomy x observation matrix.

Pipeline (one pass per sentence, no per-term regex loop):

1. :func:`sections` picks the text to read (FINDINGS / IMPRESSION of a MIMIC-style report, else the
   whole text without clinical-history sections).
2. The text is cut into sentences; each sentence is lower-cased and split into word tokens
   (de-identification masks such as "XXXX" dropped).
3. A greedy longest-match over the compiled rule table (``rules.yaml``) turns words into tokens:
   observations, anatomy heads, side words, negation / uncertainty cues and scope stops.
4. Sides are folded into the anatomy head or observation after them (across modifier words).
5. Status: forward scopes for pre-cues ("no", "possible"), backward scopes for post-cues ("is not
   seen", "cannot be excluded"), clause scopes for "versus", hedged alternatives ("X or Y"), and
   normality predicates that clear their subject ("... appear within normal limits").
6. Anatomy: a following located-at phrase ("opacity in the left lower lobe"), else the subject of a
   normal predicate or the nearest preceding anatomy in the clause ("the lungs are clear"), else an
   adjacent following one ("enlarged heart"), else the observation's default
   (``observation_defaults``) or ``unspecified``; an interpretation without an anatomy takes its
   host's ("opacities in the right upper lobe, likely scarring"). Sides resolve through each head's
   sided rows in the table.
7. The matrix: start at -1; a present mention sets 1; an absent mention sets 0 unless the cell is 1;
   an uncertain mention changes nothing (the published semantics).
"""

from __future__ import annotations

import re
from typing import Iterable, NamedTuple

import numpy as np

from medslip.triplets.rules import (
    AND, ANAT, COMMA, CONJ, IGNORE, NEG_POST, NEG_PRE, OBS, POSTSIDE, PSEUDO, SIDE, UNC_BOTH, UNC_POST,
    UNC_PRE, VERB, WORD_RE, Rules, default_rules,
)
from medslip.vocab import ANATOMY_INDEX, NUM_ANATOMIES, NUM_OBSERVATIONS, OBSERVATION_INDEX

PRESENT, ABSENT, UNCERTAIN = "present", "absent", "uncertain"
_STATUS_VALUE = {PRESENT: 1, ABSENT: 0}

# A section header at the start of a line: "FINDINGS:", " IMPRESSION:", "FINDINGS AND IMPRESSION:".
_HEADER_RE = re.compile(r"^[ \t]*([A-Z][A-Z ()/&,-]*[A-Z)])[ \t]*:", re.MULTILINE)
# A sentence: anything up to ". " / "? " / "! " or a blank line; "vs." and decimals do not end it.
#: runs of ordinary characters are taken whole (the same matches as one character at a time, 3x faster)
_SENTENCE_RE = re.compile(r"(?:[^.?!\n]+|(?<=\bvs)\.|\.(?!\s|$)|\n(?![ \t]*\n))+[.?!]?")


class Mention(NamedTuple):
    """One observation at one anatomy with a status, and where it was read (an immutable record).

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
    toks: list[list] = []
    i, n = 0, len(words)
    while i < n:
        found = r.matches(words, i)
        if not found:
            i += 1
            continue
        k, (kind, payload) = found[-1]  # the longest match
        if kind == NEG_PRE and payload is not None:
            toks.append([OBS, payload, i, i + k, None])
            toks.append([NEG_PRE, None, i, i + k, None])
        elif kind == AND and 0 < i and i + k < n and words[i - 1] in r.ordinals and words[i + k] in r.ordinals:
            pass  # "7th and 8th ribs": one head
        elif kind != IGNORE:
            toks.append([kind, payload, i, i + k, None])
        i += k
    return toks


def side_of(anatomy: str) -> str | None:
    """``left`` / ``right`` for a sided anatomy row (left_pleural, lower_left_lobe, ...), else None."""
    parts = anatomy.split("_")
    if "left" in parts:
        return "left"
    if "right" in parts:
        return "right"
    return None


def _bridged(words: list[str], end: int, start: int, r: Rules) -> bool:
    """Only modifier words ("small", "lateral", "streaky", ...; at most two, or a range "moderate to large") and
    measurements ("calcified 5 mm granuloma") lie between word ``end`` and word ``start``."""
    if end == start:
        return True
    gap = [w for w in words[end:start] if w not in r.measure_words and not w[0].isdigit()]
    if len(gap) == 3 and gap[1] == "to":  # a degree range: "bilateral moderate to large pleural effusions"
        gap = gap[::2]
    return len(gap) <= 2 and all(w in r.modifier_words for w in gap)


def _fold_sides(toks: list[list], words: list[str], r: Rules) -> list[list]:
    """Attach side words to the following anatomy head / observation (across modifier words only: "bilateral
    large pleural effusion"); apply postfix sides; a sided modifier observation passes its side on to the
    observation it modifies ("bilateral calcified granulomas")."""
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
            for back, prev in enumerate(reversed(out)):
                if prev[0] in (ANAT, OBS):
                    # a comparison of the sides after a sided head names both ("at the left costophrenic XXXX
                    # greater than right")
                    if (prev[4] is None or (t[1] == "both" and prev[4] != "both")) and t[2] - prev[3] <= 3:
                        prev[4] = t[1]
                        if prev[0] == OBS:
                            if back == 0:  # "opacities bilaterally, most prominent in ...": one phrase
                                prev[3] = t[3]
                            # the side also covers the findings this one interprets or is named with:
                            # "calcific density nodules consistent with granulomatous disease bilaterally"
                            for earlier in reversed(out[:len(out) - 1 - back]):
                                if earlier[0] == OBS and earlier[4] is None:
                                    earlier[4] = t[1]
                                elif earlier[0] not in (OBS, PSEUDO):
                                    break
                    break
                if prev[0] in (CONJ, COMMA):
                    break
            pending = None
            continue
        if pending is not None and kind in (ANAT, OBS) and _bridged(words, pend_end, t[2], r):
            t[4], t[2] = pending, pend_start  # the side word becomes part of the phrase
        pending = None
        out.append(t)
    for k in range(len(out) - 1):
        a, b = out[k], out[k + 1]
        # a sided modifier finding, or a sided head before another head ("left apical pleural thickening":
        # the left apex and the left pleura), passes its side on
        if (a[0] == b[0] or (a[0] == OBS and b[0] == ANAT)) and a[0] in (OBS, ANAT) and a[4] is not None and (
                b[4] is None and _bridged(words, a[3], b[2], r)):
            b[4] = a[4]  # also a sided modifier finding to the head after it ("bilateral calcified pulmonary nodules")
    for k in range(len(out) - 2, -1, -1):
        a, b = out[k], out[k + 1]
        # an unsided head right before a sided one takes its side ("opacity within the perihilar right lung"),
        # when that side narrows its rows (not "retrocardiac left lower lobe", where a side only adds a row)
        if a[0] == ANAT and b[0] == ANAT and a[4] is None and b[4] is not None and _bridged(words, a[3], b[2], r):
            head = r.heads[a[1]]
            if not set(head.resolve(b[4], False)) >= set(head.resolve(None, False)):
                a[4] = b[4]
    return out


#: Negation cues that, with no finding before them, negate the finding right after them.
_PARTICIPLES = frozenset(("resolved", "removed"))


def _statuses(toks: list[list], r: Rules, words: list[str]) -> dict[int, str]:
    """Status of every observation token (index -> present / absent / uncertain)."""
    status: dict[int, str] = {}
    active: str | None = None
    crossed_comma = False
    cue_end = -1  # word after a negation cue and the verbs right after it ("no definite visualized",
    # "does not appear to be"): those verbs belong to the cue and do not end its scope
    for idx, t in enumerate(toks):
        kind = t[0]
        if kind == VERB and active == ABSENT and cue_end >= 0 and 0 <= t[2] - cue_end <= (
                1 if toks[idx - 1][0] == VERB else 0):  # one word ("to") only between two verbs
            cue_end = t[3]
            continue
        if (kind == VERB and active == ABSENT and 0 < idx < len(toks) - 1 and toks[idx - 1][0] in (AND, COMMA)
                and toks[idx - 1][3] == t[2] and toks[idx + 1][0] == OBS and toks[idx + 1][2] == t[3]):
            continue  # a participle that opens a list member ("no ..., effusion, or identified mass"): no stop
        if kind != VERB:
            cue_end = -1  # (set again below by a negation cue)
        if kind == OBS:
            if active is not None and crossed_comma and t[1] in r.normal:
                active = None  # "no effusion, lungs clear": a normal statement starts a new clause
            status[idx] = active or PRESENT
        elif kind == NEG_PRE:
            active, crossed_comma, cue_end = ABSENT, False, t[3]
        elif kind == UNC_PRE:
            if not (active == ABSENT and (not crossed_comma or words[t[2] - 1:t[2]] == ["to"])):
                # "no findings to suggest pneumonia", "no effusion, pneumothorax or consolidation to suggest
                # pneumonia"
                active, crossed_comma = UNCERTAIN, False
        elif kind in (CONJ, VERB) or (kind == PSEUDO and t[1] == "stop"):
            active = None  # also "no progression of X", "no change in X": X is stated (present)
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
            if (not collected and kind == NEG_POST and words[t[3] - 1] in _PARTICIPLES and idx + 1 < n
                    and (nxt := idx + 2 if toks[idx + 1][0] == ANAT and idx + 2 < n else idx + 1) < n
                    and toks[nxt][0] == OBS and _bridged(words, t[3], toks[idx + 1][2], r)
                    and (nxt == idx + 1 or _bridged(words, toks[idx + 1][3], toks[nxt][2], r))):
                # a participle before the finding it negates: "resolved interstitial edema", "essentially
                # resolved bibasilar atelectasis"
                status[nxt] = ABSENT
        elif kind == UNC_BOTH:  # "atelectasis versus pneumonia": the whole clause
            for step in (-1, 1):
                j = idx + step
                # forwards, a plain "and" starts another finding ("effusion versus thickening and associated
                # rib deformities": the deformities are stated)
                # backwards, an interpretation link ends it ("opacities representing infection versus chronic
                # disease", "abnormal configuration ... suggestive of X versus Y": the opacities are stated)
                while 0 <= j < n and toks[j][0] not in (CONJ, COMMA, VERB) and not (
                        step > 0 and toks[j][0] == AND and toks[j][1] is None) and not (
                        step < 0 and toks[j][0] in (PSEUDO, UNC_PRE)):
                    if toks[j][0] == OBS and toks[j][1] not in r.normal:  # "stable X versus Y": stable stays
                        status[j] = UNCERTAIN
                    j += step
    for idx, t in enumerate(toks):
        kind = t[0]
        if kind == AND and t[1] is not None and 0 < idx < n - 1:
            # "atelectasis or scarring", "scarring/atelectasis": one finding, two readings -> both uncertain
            # the second reading may have its own head ("subsegmental atelectasis or left pleural effusion")
            second = idx + 2 if (idx + 2 < n and toks[idx + 1][0] == ANAT
                                 and toks[idx + 2][0] == OBS
                                 and _bridged(words, toks[idx + 1][3], toks[idx + 2][2], r)) else idx + 1
            a, b = toks[idx - 1], toks[second]
            if (a[0] == OBS and b[0] == OBS and a[1] != b[1] and status[idx - 1] == PRESENT
                    and status[second] == PRESENT and not _after_no_change(toks, idx)):
                status[idx - 1] = status[second] = UNCERTAIN
                if words[t[2]:t[3]] == ["and", "/", "or"]:
                    # "atelectasis, infiltrates and/or effusion": every member of the list is a reading
                    k = idx - 1
                    while (k > 1 and toks[k - 1][0] == COMMA and toks[k - 2][0] == OBS and status[k - 2] == PRESENT
                           and _bridged(words, toks[k - 1][3], toks[k][2], r)):
                        status[k - 2] = UNCERTAIN
                        k -= 2
        elif (kind == OBS and t[1] in r.normality_predicates and idx and status[idx] == PRESENT and (
                toks[idx - 1][0] == VERB or (idx > 1 and toks[idx - 1][0] == AND and toks[idx - 1][1] is None
                                             and toks[idx - 2][0] == VERB))
              # "X shows normal Y" says Y is normal, not X ("... monitor leads shows normal cardiomediastinal ...")
              and words[toks[idx - 1 if toks[idx - 1][0] == VERB else idx - 2][2]] not in _OBJECT_VERBS):
            # "heart size and vascular engorgement appear within normal limits": the subject is normal (also
            # after a first predicate outside the vocabulary: "markings are symmetric and normal")
            for j in _subject(toks, idx - 1 if toks[idx - 1][0] == VERB else idx - 2):
                if toks[j][0] == OBS and toks[j][1] not in r.normal and status[j] == PRESENT:
                    status[j] = ABSENT
    return status


#: Verbs whose object, not their subject, is what a normal word after them describes.
_OBJECT_VERBS = frozenset(("show", "shows", "showed", "demonstrate", "demonstrates", "demonstrated"))


def _after_no_change(toks: list[list], idx: int) -> bool:
    """A "no change in" cue governs the list at idx ("no significant change in pneumothorax or pleural fluid":
    both are stated, not two readings)."""
    j = idx - 1
    while j >= 0 and toks[j][0] in (OBS, ANAT, AND, COMMA):
        j -= 1
    return j >= 0 and toks[j][0] == PSEUDO and toks[j][1] == "stop"


_SUBJECT_STOPS = frozenset((CONJ, NEG_PRE, NEG_POST, UNC_PRE, UNC_POST, UNC_BOTH, PSEUDO, VERB))


def _subject(toks: list[list], verb: int) -> list[int]:
    """Token indices of the subject before a predicate's verb: back to a clause stop or cue, across "and" and
    commas, but not across a comma that closes an earlier statement ("No effusion, lungs are normal")."""
    out: list[int] = []
    j = verb - 1
    while j >= 0:
        k = toks[j][0]
        if k in _SUBJECT_STOPS or (k == COMMA and j and toks[j - 1][0] == OBS):
            break
        out.append(j)
        j -= 1
    return out


_ARTICLES = frozenset(("the", "a", "an"))


def _anatomy_group(toks: list[list], j: int, step: int, words: list[str], r: Rules,
                   located_at: bool = False, own_place: bool = False) -> list[int]:
    """Anatomy token j plus the anatomy tokens joined to it by "and" / "or", or next to it (modifier words
    between allowed: "right hilar and paratracheal", "retrocardiac left lower lobe"). Forwards, a located-at
    group, or the heads after a status word or a finding with a place of its own (``own_place``), stop before a
    head that modifies an observation of its own ("elevated left hemidiaphragm and basilar atelectasis",
    "borderline heart size and aortic ectasia"; but "calcified left lung and left hilar granulomas")."""
    group = [j]
    n = len(toks)
    if not r.heads[toks[j][1]].joins:
        return group
    while True:
        if 0 <= j + step < n and toks[j + step][0] == ANAT and r.heads[toks[j + step][1]].joins and (
                _bridged(words, toks[j][3], toks[j + 1][2], r) if step > 0
                else _bridged(words, toks[j - 1][3], toks[j][2], r)):
            j += step
        elif ((located_at or own_place) and step > 0 and j + 2 < n and toks[j + 1][0] == COMMA and (
                toks[j + 2][0] == ANAT or (j + 3 < n and toks[j + 2][0] == AND and toks[j + 3][0] == ANAT))
              and not _owned(toks, j + 2 if toks[j + 2][0] == ANAT else j + 3, 1, words, r)
              and all(w in r.modifier_words or w in _ARTICLES for w in words[toks[j + 1][3]:toks[
                  j + 2 if toks[j + 2][0] == ANAT else j + 3][2]] if w not in ("and", "or"))
              and _closed_list(toks, j + 1)):
            # a comma list of locations: "leads overlie the right atrium, right ventricle, and coronary sinus"
            j += 2 if toks[j + 2][0] == ANAT else 3
        elif (0 <= j + 2 * step < n and toks[j + step][0] == AND and toks[j + 2 * step][0] == ANAT
              and r.heads[toks[j + 2 * step][1]].joins
              and not ((located_at or own_place) and _owned(toks, j + 2 * step, step, words, r))
              and not (step < 0 and _owned(toks, j, 1, words, r) and (
                  _object_of(toks, j + 2 * step, words, r) or _held(toks, j + 2 * step, words, r)))):
            j += 2 * step
        else:
            return group
        group.append(j)


def _closed_list(toks: list[list], k: int) -> bool:
    """From the comma at k, heads and commas lead to "and" / "or" and a last head or the end ("A, B and C"),
    so the comma separates places, not statements ("cardiac silhouette, mediastinal contours appear ...")."""
    n = len(toks)
    while k < n and toks[k][0] in (ANAT, COMMA):
        k += 1
    return k < n and toks[k][0] == AND and (k + 1 == n or toks[k + 1][0] == ANAT)


def _owned(toks: list[list], k: int, step: int, words: list[str], r: Rules) -> bool:
    """Head k, reached forwards over "and", modifies the observation right after it, so it is not part of
    the group ("degenerative disease of the spine as well as rib fractures")."""
    return (step > 0 and k + 1 < len(toks) and toks[k + 1][0] == OBS
            and _bridged(words, toks[k][3], toks[k + 1][2], r))


def _held(toks: list[list], k: int, words: list[str], r: Rules) -> bool:
    """Head k, reached backwards over "and" from a head that modifies the observation after it, is the head of
    a status word or of a finding with a place of its own right before it ("elevated left hemidiaphragm and
    basilar atelectasis": the atelectasis is not at the diaphragm)."""
    return (k > 0 and toks[k - 1][0] == OBS and _bridged(words, toks[k - 1][3], toks[k][2], r)
            and (toks[k - 1][1] in r.normal or toks[k - 1][1] in r.observation_defaults))


def _object_of(toks: list[list], k: int, words: list[str], r: Rules) -> bool:
    """Head k, reached backwards over "and" from a head that modifies the observation after it, is the location
    of an earlier observation ("disease of the spine as well as rib fractures": the fractures are not at the
    spine)."""
    return (k > 0 and toks[k - 1][0] == OBS
            and any(w in r.prepositions for w in words[toks[k - 1][3]:toks[k][2]]))


def _locate(toks: list[list], idx: int, words: list[str], r: Rules) -> list[int]:
    """Anatomy tokens giving the location of observation token idx (empty: none named)."""
    n = len(toks)
    t = toks[idx]
    # 1. a following located-at phrase: "opacity (is seen) in the right lower lobe", shared by a list of
    # observations before it ("consolidation and atelectasis in the right lower lobe"), by an observation
    # and its interpretation ("opacities consistent with edema in the lower lobes") and by a part and its
    # whole ("tip of the catheter projects over the right atrium")
    j, end, skipped, listed = idx + 1, t[3], False, False
    while j < n:
        k = toks[j][0]
        if k == OBS and (_bridged(words, end, toks[j][2], r) or (
                toks[j][2] - end <= r.part_of_gap and words[end] in r.part_of)):
            end, j = toks[j][3], j + 1
        elif k in (AND, PSEUDO) and j + 1 < n and toks[j + 1][0] == OBS:
            end, j, listed = toks[j + 1][3], j + 2, listed or k == AND
        else:
            break
    # a list member with its own head before it keeps it ("pleural effusions and elevation of both
    # hemidiaphragms": the effusions are not at the diaphragm)
    own_head = idx and toks[idx - 1][0] == ANAT and _bridged(words, toks[idx - 1][3], t[2], r)
    if j + 1 < n and toks[j][0] == COMMA and toks[j + 1][0] == ANAT and _bridged(words, toks[j][3], toks[j + 1][2], r):
        # a location in apposition that ends the sentence: "calcified granuloma, right lung base"
        group = _anatomy_group(toks, j + 1, 1, words, r)
        if group[-1] == n - 1 and toks[group[-1]][3] == len(words):
            # a head right before the finding stays ("right basilar airspace disease, XXXX right middle lobe")
            before = _anatomy_group(toks, idx - 1, -1, words, r) if (
                idx and toks[idx - 1][0] == ANAT and _bridged(words, toks[idx - 1][3], t[2], r)) else []
            return before + group
    if (j + 2 < n and toks[j][0] == CONJ and toks[j][1] == "relative" and toks[j][2] == end
            and toks[j + 1][0] == VERB and words[toks[j + 1][2]] in _SEEMS):
        # "opacity ... which appears to be within the left lower lobe": the place of the finding before
        end, j = toks[j][3], j + 1
    while j < n and toks[j][0] == VERB:
        end, skipped, j = toks[j][3], True, j + 1
    adjacent_after: list[int] = []
    if j < n and toks[j][0] == ANAT and not (listed and own_head):
        gap = words[end:toks[j][2]]
        # measurements ("measuring approximately 3.3 cm") do not count towards the reach of the preposition
        kept = [w for w in gap if w not in r.measure_words and not w.isdigit()]
        if gap and len(kept) <= r.max_prep_gap and (any(w in r.prepositions for w in kept[:r.prep_reach]) or (
                t[1] in r.object_observations and j == idx + 1 and all(w in _ARTICLES for w in kept))):
            # "tube terminates in the trachea"; a head right before the observation stays ("left perihilar
            # scarring in the upper lobe")
            before = _anatomy_group(toks, idx - 1, -1, words, r) if (
                idx and toks[idx - 1][0] == ANAT and all(  # also across a measurement: "left lower lobe 5 mm granuloma"
                    w in r.measure_words or w[0].isdigit() for w in words[toks[idx - 1][3]:t[2]])) else []
            after = _anatomy_group(toks, j, 1, words, r, located_at=True)
            if after and all(_lung_region(r.heads[toks[a][1]].resolve(toks[a][4], False)) for a in after):
                # an unsided organ word is no place of its own: "lung nodule in the right upper lobe"
                before = [a for a in before if not (r.heads[toks[a][1]].organ and toks[a][4] is None)]
            return before + after
        if (not gap or all(w in r.modifier_words for w in gap)) and (skipped or j == idx + 1 or (
                # "opacities and chronic inflammatory change right midlung": a list shares a lung region
                # written after it
                listed and t[1] not in r.pleural_observations and t[1] not in r.observation_defaults
                and t[1] not in r.normal and not _owned(toks, j, 1, words, r)
                and _lung_region(r.heads[toks[j][1]].resolve(toks[j][4], False)))):
            adjacent_after = _anatomy_group(  # "enlarged heart", "atelectasis is seen bibasilar"
                toks, j, 1, words, r, own_place=t[1] in r.normal or t[1] in r.observation_defaults)
    # 2. a predicate ("the heart and lungs are normal"): every head of the subject; otherwise the nearest
    # preceding anatomy in the clause ("the lungs are clear"); an observation that is itself a subject
    # ("... and effusion is not seen") does not reach back over "and".
    verb = idx - 1 if idx and toks[idx - 1][0] == VERB else idx - 2 if (
        idx > 1 and toks[idx - 1][0] == AND and toks[idx - 1][1] is None and toks[idx - 2][0] == VERB
        and t[1] in r.normality_predicates) else -1  # "markings are symmetric and normal"
    if verb >= 0 and t[1] in r.normal:
        heads = [a for a in _subject(toks, verb) if toks[a][0] == ANAT]
        if heads:
            return heads[::-1]
    if t[1] in r.normal and idx > 1 and toks[idx - 1][0] == CONJ and " ".join(
            words[toks[idx - 1][2]:toks[idx - 1][3]]) in _CONTRAST and (t[3] == len(words) or (
            idx + 1 < len(toks) and toks[idx + 1][2] == t[3] and toks[idx + 1][0] in (NEG_PRE, COMMA, CONJ))):
        # "lungs are hyperinflated but clear", "hyperexpanded lungs, otherwise clear": the subject of the
        # statement before
        heads = _statement_subject(toks, idx - 1, words, r)
        if heads:
            return heads
    subject = idx + 1 < n and toks[idx + 1][0] in (VERB, NEG_POST, UNC_POST)
    # a modifier of the next observation ("... demonstrate stable degenerative disease of the spine") is not
    # about the subject across a verb: it takes that observation's anatomy (see _sentence_mentions)
    modifier = idx + 1 < n and toks[idx + 1][0] == OBS and _bridged(words, t[3], toks[idx + 1][2], r)
    j = idx - 1
    negated = False
    while j >= 0:
        k = toks[j][0]
        if k == NEG_PRE:
            negated = True
        elif k == ANAT and not r.heads[toks[j][1]].joins and (negated or (t[1] not in r.normal and any(
                toks[m][0] == AND for m in range(j + 1, idx)))):
            # "low lung volumes without focal opacity", "low lung volumes and bronchovascular crowding": a
            # property head is no place for a negated finding or one joined after it
            break
        elif k == ANAT and t[1] in r.observation_defaults and any(toks[m][0] == AND for m in range(j + 1, idx)) and (
                _object_of(toks, min(_anatomy_group(toks, j, -1, words, r)), words, r)):
            # "surgical changes of the right hemithorax and mild cardiomegaly": a finding with a place of its own
            # does not take the place of an earlier finding
            break
        elif k == OBS and negated and toks[j][1] in r.normal and t[1] in r.pleural_observations:
            break  # "lungs are clear without effusion": the pleura is not the lungs' subject
        elif k == ANAT and negated and t[1] in r.pleural_observations and _object_of(
                toks, g := min(_anatomy_group(toks, j, -1, words, r)), words, r) and (
                toks[g - 1][1] not in r.pleural_observations):
            break  # "airspace disease in the lingula without effusion": the lingula is the disease's place
        if k == CONJ and j + 1 == idx and j and toks[j - 1][0] == ANAT and t[1] in r.normal and " ".join(
                words[toks[j][2]:toks[j][3]]) == "otherwise":
            pass  # "the lungs otherwise clear": the subject of the predicate
        elif (k == CONJ and j + 1 == idx and j > 1 and words[toks[j][2]:toks[j][3]] == ["with"]
              and toks[j - 1][0] == OBS and toks[j - 1][1] in r.normal and toks[j - 2][0] == VERB
              and t[1] not in r.normal and t[1] not in r.pleural_observations
              and t[1] not in r.observation_defaults):
            # "the lungs are clear with scattered granulomas": a finding the normal statement allows is in
            # the statement's lungs
            heads = _statement_subject(toks, j, words, r)
            if heads and all(_lung_region(r.heads[toks[a][1]].resolve(toks[a][4], False)) for a in heads):
                return heads
            break
        elif k in (CONJ, COMMA) or (subject and k == AND) or (modifier and k == VERB) or (
                k == AND and toks[j + 1][0] == NEG_PRE):  # "X in the right lung and no Y": a new statement
            break
        if k == ANAT and adjacent_after and toks[adjacent_after[0]][2] == t[3] and any(
                toks[m][0] in (OBS, AND) for m in range(j + 1, idx)):
            # "heart within normal limits for low lung volumes", "elevated right hemidiaphragm and low lung
            # volumes": the head right after "low" is its own
            return adjacent_after
        if k == ANAT:
            nxt = toks[j + 1]
            if (j + 1 != idx and nxt[0] == OBS and _bridged(words, toks[j][3], nxt[2], r)
                    and not _chain(toks, j + 1, idx, words, r)
                    and not (nxt[1] in r.normal and t[1] in r.normal)
                    and not _shared_head(toks, j, idx, words, r)):
                break  # "pleural effusion or pneumothorax": "pleural" belongs to the effusion
            return _anatomy_group(toks, j, -1, words, r)
        j -= 1
    # 3. an adjacent following head: "enlarged heart", "low lung volumes"
    return adjacent_after


_CONTRAST = frozenset(("but", "otherwise", "but otherwise"))
#: Verbs after "which" that place the finding before it ("which appears to be within ...").
_SEEMS = frozenset(("appear", "appears", "is", "are", "lies", "seen", "projects", "project"))


def _statement_subject(toks: list[list], j: int, words: list[str], r: Rules) -> list[int]:
    """Place heads of the statement that ends before the conjunction at j (and a comma before it): the subject
    of its predicate ("lungs are hyperinflated") or the head of its finding ("hyperexpanded lungs", "lung
    hyperexpansion"); property heads ("lung volumes") are no subject."""
    j -= 1
    if j >= 0 and toks[j][0] == COMMA:
        j -= 1
    if j >= 0 and toks[j][0] == ANAT:  # "hyperexpanded lungs, otherwise clear"
        if j and toks[j - 1][0] == OBS and _bridged(words, toks[j - 1][3], toks[j][2], r):
            heads = _anatomy_group(toks, j, -1, words, r)
        else:
            return []
    elif j >= 1 and toks[j][0] == OBS and toks[j - 1][0] == VERB:  # "lungs are hyperinflated"
        heads = [a for a in _subject(toks, j - 1) if toks[a][0] == ANAT][::-1]
    elif j >= 1 and toks[j][0] == OBS and toks[j - 1][0] == ANAT and _bridged(
            words, toks[j - 1][3], toks[j][2], r):  # "mild lung hyperexpansion"
        heads = _anatomy_group(toks, j - 1, -1, words, r)
    else:
        return []
    return heads if heads and all(r.heads[toks[a][1]].joins for a in heads) else []


def _shared_head(toks: list[list], j: int, idx: int, words: list[str], r: Rules) -> bool:
    """Head j modifies the observation after it, and observation idx is joined to that one by a plain "and":
    a second predicate of a normal statement ("lungs clear and expanded") or a second lung finding at the
    same lung region ("left lower lobe infiltrate and focal atelectasis"; not a pleural finding, not a finding
    with a default place of its own such as a device or cardiomegaly, not "or"), or at a head marked ``shared``
    ("aortic calcifications and tortuosity")."""
    first = toks[j + 1]
    if not (idx == j + 3 and toks[j + 2][0] == AND and toks[j + 2][1] is None
            and _bridged(words, toks[j + 2][3], toks[idx][2], r)):
        return False
    if first[1] in r.normal:
        return True
    if first[1] in r.pleural_observations or toks[idx][1] in r.pleural_observations or (
            toks[idx][1] in r.observation_defaults):  # not a device, not cardiomegaly, not "low"
        return False
    return r.heads[toks[j][1]].shared or _lung_region(r.heads[toks[j][1]].resolve(toks[j][4], False))


def _lung_region(names: tuple[str, ...]) -> bool:
    """The anatomy rows are all lung regions (lobes, zones, a lung), not a property such as lung_volumes."""
    return bool(names) and all(("lobe" in a or "lung" in a) and a != "lung_volumes" for a in names)


def _chain(toks: list[list], first: int, idx: int, words: list[str], r: Rules) -> bool:
    """Tokens first..idx are observations in a row, each modifying the next ("parenchymal metastatic disease")."""
    for k in range(first, idx):
        if toks[k][0] != OBS or toks[k + 1][0] != OBS or not _bridged(words, toks[k][3], toks[k + 1][2], r):
            return False
    return True


def _last_obs(toks: list[list], j: int) -> int:
    """The observation token j, or the one right before the anatomy heads ending at j ("nodule left
    midlung") or before a verb ("opacities again noted"); -1 if there is none."""
    if j >= 0 and toks[j][0] == VERB:
        j -= 1
    while j >= 0 and toks[j][0] == ANAT:
        j -= 1
    return j if j >= 0 and toks[j][0] == OBS else -1


def _stated_before(toks: list[list], j: int) -> int:
    """The observation that token j ends the statement of, across the heads and "and"s of its own phrase
    ("normal in size and contour"); -1 if there is none."""
    while j >= 0 and toks[j][0] in (ANAT, AND):
        j -= 1
    return j if j >= 0 and toks[j][0] == OBS else -1


def _words(low: str, r: Rules, full: bool = True) -> tuple[list[str], list]:
    """Word tokens of a lower-cased sentence and their spans (``(start, end)`` or a match); de-identification
    masks ("XXXX") are dropped so that they do not break a phrase ("costophrenic XXXX blunting"), a joined
    mask ("XXXX-a-XXXX") becomes the word the rule table gives it, and a phrase with masks of one reading
    ("superior XXXX XXXX") the words the table gives it (none: the phrase is dropped)."""
    if not r.masks or not any(m in low for m in r.masks):
        if not full:
            return WORD_RE.findall(low), []
        matches = list(WORD_RE.finditer(low))
        return [m.group() for m in matches], matches
    matches = list(WORD_RE.finditer(low))
    words: list[str] = []
    spans: list = []
    i, n = 0, len(matches)
    while i < n:
        m = matches[i]
        w = m.group()
        cands = r.mask_phrases.get(w)
        if cands is not None and not (
                # a mask that opens a joined mask ("left XXXX-a-XXXX") is that word, not a masked word
                i + 3 < n and r.joined_masks and matches[i + 1].group() in r.masks
                and low[matches[i + 1].start():matches[i + 3].end()] in r.joined_masks):
            hit = next((e for e in cands if i + len(e[0]) <= n
                        and all(matches[i + k].group() == x for k, x in enumerate(e[0]))), None)
            if hit is not None:
                span = _Span(m.start(), matches[i + len(hit[0]) - 1].end())
                words.extend(hit[1])
                spans.extend([span] * len(hit[1]))
                i += len(hit[0])
                continue
        if w in r.masks:
            if i + 2 < n and r.joined_masks:
                joined = r.joined_masks.get(low[m.start():matches[i + 2].end()])
                if joined is not None:
                    words.append(joined)
                    spans.append(_Span(m.start(), matches[i + 2].end()))
                    i += 3
                    continue
            i += 1
            continue
        words.append(w)
        spans.append(m)
        i += 1
    return words, spans


class _Span(NamedTuple):
    s: int
    e: int

    def start(self) -> int:
        return self.s

    def end(self) -> int:
        return self.e


def _sentence_mentions(sent: str, low: str, offset: int, r: Rules, full: bool = True) -> list:
    """Mentions of one sentence; ``sent``/``low`` are its original / lower-cased text at ``offset``.
    With ``full=False``: ``(observation, anatomy, status)`` tuples only (the matrix needs no more)."""
    words, spans = _words(low, r, full)
    if not words:
        return []
    toks = _fold_sides(_scan(words, r), words, r)
    kinds = [t[0] for t in toks]
    n_obs = kinds.count(OBS)
    if not n_obs:
        return []
    drop: set[int] = set()
    for k in range(1, len(toks) - 1 if AND in kinds else 1):
        if toks[k][0] != AND or toks[k][1] is None:
            continue
        a, b = toks[k - 1], toks[k + 1]
        if a[0] == OBS and b[0] == OBS and a[1] == b[1]:  # "pacemaker/defibrillator": one mention
            drop.update((k, k + 1))
        elif toks[k][1] == "/" and a[0] == ANAT and b[0] == ANAT:  # "right perihilar/upper lobe": one side
            a[4] = a[4] or b[4]
            b[4] = b[4] or a[4]
    if drop:
        for k in sorted(drop, reverse=True):
            if toks[k][0] == OBS:
                toks[k - 2][3] = toks[k][3]  # the merged phrase spans both names
        toks = [t for k, t in enumerate(toks) if k not in drop]
    status = _statuses(toks, r, words)
    heads = r.heads
    # Right to left, so that a modifier ("stable", "calcified") adjacent to the observation after it
    # ("calcified granuloma in the right lower lobe") takes that observation's location.
    located: dict[int, list[str]] = {}
    named: set[int] = set()
    obs_at = [k for k, t in enumerate(toks) if t[0] == OBS]
    for idx in reversed(obs_at):
        t = toks[idx]
        pleural = t[1] in r.pleural_observations
        anatomies: list[str] = []
        group = _locate(toks, idx, words, r)
        if (group in ([], [idx + 1]) and idx + 2 < len(toks) and toks[idx + 1][0] == ANAT
                and toks[idx + 2][0] == OBS and t[4] is None and _bridged(words, t[3], toks[idx + 1][2], r) and _bridged(words, toks[idx + 1][3], toks[idx + 2][2], r)):
            # a modifier before a head and its finding describes that finding: "nodular interstitial opacities
            # distributed through both lungs" (the nodular opacities are in both lungs too)
            own = heads[toks[idx + 1][1]].resolve(toks[idx + 1][4], t[1] in r.pleural_observations)
            located[idx] = list(dict.fromkeys([*own, *located[idx + 2]]))
            named.add(idx)
            continue
        # the side of the observation, or of the head right before it, reaches an unsided region word
        # ("left effusion at the base", "left perihilar scarring in the upper lobe")
        side = t[4] or (toks[group[0]][4] if len(group) > 1 and group[0] == idx - 1 and group[-1] > idx else None)
        # a head that is itself sided ("biapical", "bibasilar") passes its side to the heads beside it
        carried = None
        for a in group:
            if heads[toks[a][1]].side:
                carried = heads[toks[a][1]].side
                break
        for a in group:
            for name in heads[toks[a][1]].resolve(toks[a][4] or side or carried, pleural):
                if name not in anatomies:
                    anatomies.append(name)
        if (t[4] is not None and anatomies and group[0] > idx and r.distribution_words
                and any(w in r.distribution_words for w in words[t[3]:toks[group[0]][2]])):
            # "opacities bilaterally, most prominent in the lung bases": both lungs and the bases
            own = r.default_anatomies(t[1], t[4])
            anatomies = list(own) + [a for a in anatomies if a not in own]
        if (t[4] is not None and anatomies and carried is None and t[1] in r.observation_defaults
                and not any(side_of(a) for a in anatomies)):
            # a finding with sided places of its own (effusion, pneumothorax, elevation, ...) at a place without
            # sided rows keeps its side ("large left effusion extending up to the level of the aortic arch":
            # the left pleura and the aorta); others do not ("fracture ... on right rib 4")
            anatomies = [a for a in r.default_anatomies(t[1], t[4]) if side_of(a)] + anatomies
        if not anatomies and idx + 1 < len(toks) and toks[idx + 1][0] == OBS and _bridged(
                words, t[3], toks[idx + 1][2], r) and toks[idx + 1][1] not in r.object_observations:
            anatomies = [a for a in located[idx + 1] if a != "unspecified"]
        elif (not anatomies and t[1] in r.normal and idx + 2 < len(toks) and toks[idx + 1][0] == AND
              and toks[idx + 1][1] is None and toks[idx + 2][0] == OBS and toks[idx + 2][1] in r.normal
              and toks[idx + 1][2] == t[3] and _bridged(words, toks[idx + 1][3], toks[idx + 2][2], r)):
            # two status words of one head: "normal and stable cardiomediastinal contours"
            anatomies = [a for a in located[idx + 2] if a != "unspecified"]
        if anatomies or t[4] is not None:
            named.add(idx)
        located[idx] = anatomies or list(r.default_anatomies(t[1], t[4]))
    # An interpretation without an anatomy of its own takes the anatomy of the finding it interprets:
    # "opacities in the right upper lobe, likely scarring", "density ... consistent with granuloma".
    # A postposed status word takes the anatomy of the observation right before it ("nodule stable").
    host: int | None = None
    from_host: set[int] = set()
    for idx, t in enumerate(toks if n_obs > 1 else ()):
        kind = t[0]
        if kind == OBS:
            if (idx > 1 and idx not in named and t[4] is None and status[idx] == UNCERTAIN
                    and status.get(idx - 2) == UNCERTAIN and toks[idx - 2][0] == OBS
                    and (toks[idx - 1][0] == UNC_BOTH or (toks[idx - 1][0] == AND and toks[idx - 1][1]))):
                # the second reading of one finding is at the same place ("scarring/atelectasis in the RUL",
                # "atelectasis versus scarring at the left base")
                located[idx] = list(located[idx - 2])
            elif idx not in named and t[4] is None and t[1] in r.postposed and idx and (
                    toks[idx - 1][0] == OBS
                    or (idx > 1 and toks[idx - 1][0] == COMMA and _last_obs(toks, idx - 2) >= 0)
                    or (idx == len(toks) - 1 and toks[idx - 1][0] == AND and toks[idx - 1][1] is None
                        and toks[idx - 2][0] == COMMA and _stated_before(toks, idx - 3) >= 0)):
                # "nodule stable", "nodule, stable", "granulomatous nodule left midlung, stable",
                # "left base opacities again noted, stable"; ending the sentence after ", and": "the
                # cardiomediastinal silhouette is normal in size and contour, and stable"
                located[idx] = list(located[idx - 1 if toks[idx - 1][0] == OBS else _last_obs(toks, idx - 2)
                                            if toks[idx - 1][0] == COMMA else _stated_before(toks, idx - 3)])
            elif (host is not None and idx not in named and t[4] is None and status[idx] != ABSENT
                    and t[1] not in r.normal):
                located[idx] = list(located[host])
                from_host.add(idx)
            elif t[1] in r.appositive_hosts and idx in named and status[idx] == PRESENT:
                host = idx
            else:
                host = None
        elif kind in (NEG_PRE, NEG_POST) or (kind == CONJ and t[1] is None) or (kind == AND and not (
                0 < idx < len(toks) - 1 and (toks[idx - 1][0] == ANAT and toks[idx + 1][0] == ANAT
                                             or idx - 1 in from_host))):
            # an "and" between two places ("in the right lung and left base, which ...") keeps the host, and so
            # does one that continues a list of readings ("opacity at the left base, likely atelectasis and
            # scarring")
            host = None
    # A location fronted before a comma or "there is" covers the sentence: "In the left lung base, there is a 9 mm
    # nodule", "However, in the left lower lobe there is a nodule".
    f = 0
    while f < len(toks) and toks[f][0] in (CONJ, COMMA):  # "However, in the left lower lobe there is ..."
        f += 1
    lead = toks[f - 1][3] if f else 0
    if (f < len(toks) and toks[f][0] == ANAT and 0 < toks[f][2] - lead <= 3
            and any(w in r.prepositions for w in words[lead:toks[f][2]])):
        front = _anatomy_group(toks, f, 1, words, r, located_at=True)
        if front[-1] + 1 < len(toks) and toks[front[-1] + 1][0] in (COMMA, CONJ):
            for idx in obs_at:
                if idx not in named and toks[idx][4] is None:
                    pleural = toks[idx][1] in r.pleural_observations
                    located[idx] = list(dict.fromkeys(
                        a for k in front for a in heads[toks[k][1]].resolve(toks[k][4], pleural)))
    # "Mediastinum is normal with no adenopathy", "lungs are clear, without infiltrate": a finding negated
    # right after a normal statement is at that statement's anatomy (a pleural finding keeps its own)
    for idx in obs_at:
        if idx in named or status[idx] != ABSENT or toks[idx][1] in r.pleural_observations:
            continue
        q = idx - 1
        while q >= 0 and toks[q][0] in (OBS, AND, COMMA):
            q -= 1
        if q < 1 or toks[q][0] != NEG_PRE:
            continue
        p = q - 1
        if toks[q][2] == toks[p][2]:
            pass  # "right lung free of consolidation", "lungs clear without ...": one phrase states both
        elif words[toks[q][2]] == "without" and toks[p][0] == COMMA:
            p -= 1
            if p > 0 and toks[p][0] == ANAT and toks[p - 1][0] == OBS and toks[p - 1][1] in r.normal and (
                    toks[p - 1][3] == toks[p][2]):
                p -= 1  # "grossly clear lungs, without focal consolidation": the normal word before its head
        elif words[toks[q][2]] == "without" and p and toks[p][0] == AND and toks[p][1] is None and (
                toks[p - 1][0] == COMMA):
            p -= 2  # "the lungs are clear, and without focal opacity"
        elif toks[p][0] == CONJ and words[toks[p][2]] == "with":
            p -= 1
        elif words[toks[q][2]] != "without":
            continue
        while p > 1 and toks[p][0] == OBS and toks[p][1] not in r.normal and toks[p - 1][0] == AND and (
                toks[p - 2][0] == OBS):
            p -= 2  # "lungs remain clear and expanded with no infiltrates"
        if p >= 0 and toks[p][0] == OBS and toks[p][1] in r.normal and p in named and status[p] == PRESENT and not (
                toks[p][1] in r.postposed and p and toks[p - 1][0] == OBS):
            # (a status word right after a finding is about that finding, not a normal statement: "bilateral
            # granulomas stable ..., without focal consolidation")
            located[idx] = list(located[p])
    out: list = []
    sentence = " ".join(sent.split()) if full else ""
    for idx in obs_at:
        t = toks[idx]
        obs, anatomies = t[1], located[idx]
        st = status[idx]
        pairs = [(obs, a) for a in anatomies]
        for c_obs, c_anats, becomes, at in r.combine:
            if obs == c_obs and any(a in c_anats for a in anatomies):
                pairs = [(obs, a) for a in anatomies if a not in c_anats] + [(becomes, a) for a in at]
        if full:
            span = (offset + spans[t[2]].start(), offset + spans[t[3] - 1].end())
            out.extend(Mention(o, a, st, sentence, span) for o, a in pairs)
        else:
            out.extend((o, a, st) for o, a in pairs)
    return out


def _extract(text: str, r: Rules) -> list[Mention]:
    body = sections(text, r)
    low = _lower_same_length(body)
    out: list[Mention] = []
    for m in _SENTENCE_RE.finditer(low):
        s, e = m.span()
        out.extend(_sentence_mentions(body[s:e], low[s:e], s, r, True))
    return out


def _cell_values(triples) -> tuple[tuple[int, int], ...]:
    """(flat cell index, 1 present / 0 absent) of each triple; uncertain ones set no cell."""
    cells = []
    for obs, anat, st in triples:
        v = _STATUS_VALUE.get(st)
        if v is not None:
            cells.append((ANATOMY_INDEX[anat] * NUM_OBSERVATIONS + OBSERVATION_INDEX[obs], v))
    return tuple(cells)


def _report_cells(text: str, r: Rules) -> list[tuple[int, int]]:
    """The matrix path: the cells of every sentence of the report. It reads only the lower-cased sentence, so a
    sentence seen before (real reports repeat many) is looked up in ``r.sentence_cache``."""
    cache = r.sentence_cache
    out: list[tuple[int, int]] = []
    for sent in _SENTENCE_RE.findall(_lower_same_length(sections(text, r))):
        sent = sent.strip()  # " The lungs are clear." after a period reads as "The lungs are clear."
        cells = cache.get(sent)
        if cells is None:
            if len(cache) >= r.sentence_cache_size:
                cache.clear()
            cells = cache[sent] = _cell_values(_sentence_mentions("", sent, 0, r, False))
        out.extend(cells)
    return out


def extract_mentions(text: str, rules: Rules | None = None) -> list[Mention]:
    """All (observation, anatomy, status) mentions of a report, each with its sentence and span.

    The text read is :func:`sections` of ``text``; spans index into that string.
    """
    return _extract(text, rules or default_rules())


_EMPTY_MATRIX = np.full(NUM_ANATOMIES * NUM_OBSERVATIONS, -1, dtype=np.int8)


def _matrix(cells: Iterable[tuple[int, int]]) -> np.ndarray:
    """Flat (cell, value) pairs -> the (51, 75) matrix; a cell present anywhere stays present."""
    mat = _EMPTY_MATRIX.copy()
    for key, v in cells:
        if v or mat[key] != 1:
            mat[key] = v
    return mat.reshape(NUM_ANATOMIES, NUM_OBSERVATIONS)


def mentions_to_matrix(mentions: list[Mention]) -> np.ndarray:
    """The int8 (51, 75) matrix: 1 present; 0 absent unless present in the same cell; else -1."""
    return _matrix(_cell_values((m.observation, m.anatomy, m.status) for m in mentions))


def report_to_matrix(text: str, rules: Rules | None = None) -> np.ndarray:
    """Report text -> int8 array (51 anatomies, 75 observations) with values in {-1, 0, 1}."""
    return _matrix(_report_cells(text, rules or default_rules()))
