"""A gold set of real report sentences (Indiana University, hand-annotated) and its scorer.

The gold file (``tests/triplets/data/gold.jsonl``, one JSON object per line) holds sentences drawn from
the 3,955 IU reports that ``torchxrayvision`` ships, each with the (status, observation, anatomy) cells a
reader annotated from the sentence alone (guideline: ``docs/triplets.md``)::

    {"id": "g0007", "report": "1234.xml", "stratum": "sided", "split": "tune",
     "sentence": "Small left pleural effusion.", "cells": [["p", "effusion", "left_pleural"]]}

``status`` is ``p`` (present, matrix 1), ``a`` (absent, 0) or ``u`` (uncertain: stays -1, recorded
for the reader only). ``split`` is ``heldout`` for a fixed third chosen by a seeded hash of the
sentence before any result was looked at (:func:`split_of`), else ``tune``.

Run the scorer::

    python -m medslip.triplets.gold [--gold FILE] [--split all|tune|heldout] [--draw D] [--errors]

It prints, per split: precision and recall of present and of absent cells, side accuracy of sided
findings and the false-positive rate of abnormal observations on normal sentences (definitions in
:func:`score`). ``python -m medslip.triplets.gold --sample N`` prints the stratified candidate draw
that the gold file was built from (seed :data:`SEED`).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import re
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from medslip.triplets.extract import _SENTENCE_RE, extract_mentions, sections, side_of
from medslip.triplets.rules import Rules, default_rules
from medslip.vocab import ANATOMY_INDEX, NORMAL_OBSERVATIONS, OBSERVATION_INDEX

SEED = 18
HELDOUT_SALT = "medslip-triplets-gold-v1"
#: Candidates drawn per stratum (first matching stratum wins, in this order), per draw: the first draw
#: (g0000-g0329) was annotated and scored before any extractor change; the second (g0330-g0449), third
#: (g0450-g0539), fourth (g0540-g0604), fifth (g0605-g0719), sixth (g0720-g1079), seventh (g1080-g1439), eighth
#: (g1440-g1799), ninth (g1800-g2159) and tenth (g2160-g2519; the last five annotated twice, blind, and adjudicated)
#: were added afterwards, weighted towards sided sentences, to have more sentences to tune on (their held-out
#: thirds are held out like the first's).
STRATA: dict[str, int] = {"device": 60, "sided": 110, "negated": 90, "other": 70}
DRAWS: tuple[tuple[int, dict[str, int]], ...] = (
    (SEED, STRATA),
    (SEED * 100 + 2, {"device": 25, "sided": 70, "negated": 15, "other": 10}),
    (SEED * 100 + 3, {"device": 15, "sided": 50, "negated": 15, "other": 10}),
    (SEED * 100 + 4, {"device": 15, "sided": 40, "negated": 5, "other": 5}),
    (SEED * 100 + 5, {"device": 20, "sided": 60, "negated": 25, "other": 10}),
    (SEED * 100 + 6, {"device": 40, "sided": 190, "negated": 90, "other": 40}),
    (SEED * 100 + 7, {"device": 30, "sided": 200, "negated": 100, "other": 30}),
    (SEED * 100 + 8, {"device": 30, "sided": 180, "negated": 120, "other": 30}),
    (SEED * 100 + 9, {"device": 20, "sided": 220, "negated": 100, "other": 20}),
    (SEED * 100 + 10, {"device": 20, "sided": 220, "negated": 100, "other": 20}),
)
_STRATUM_RE = {
    "device": re.compile(r"\b(tube|catheter|line|picc|pacemaker|pacer|wire|clip|lead|device|port|stent|"
                         r"hardware|tip|icd|defibrillator|generator|drain|prosthe\w*|valve|coil|filter)s?\b"),
    "sided": re.compile(r"\b(left|right|bilateral(ly)?|both|bi(apical|basilar|basal|basally|laterally)|"
                        r"\w+-sided)\b"),
    "negated": re.compile(r"\b(no|not|without|negative|normal|unremarkable|clear|free|within)\b"),
    "other": re.compile(r"."),
}
#: Observations that are not abnormal findings (for the false-positive rate on normal sentences).
NOT_ABNORMAL = frozenset(NORMAL_OBSERVATIONS) | {"excluded_obs"}
_STATUS = {"p": 1, "a": 0}


def draw_of(gold_id: str) -> int:
    """The draw (1-based, in :data:`DRAWS` order) a gold id ``gNNNN`` comes from: ids are numbered in draw order."""
    n, first = int(gold_id.lstrip("g")), 0
    for d, (_seed, strata) in enumerate(DRAWS, 1):
        first += sum(strata.values())
        if n < first:
            return d
    raise ValueError(f"gold id {gold_id!r} is past the last draw ({first} sentences)")


def default_gold_path() -> Path:
    """``tests/triplets/data/gold.jsonl`` of the source checkout this module sits in."""
    return Path(__file__).resolve().parents[2] / "tests" / "triplets" / "data" / "gold.jsonl"


def split_of(sentence: str) -> str:
    """``heldout`` for a fixed third of sentences (seeded hash of the normalised text), else ``tune``."""
    key = " ".join(sentence.lower().split())
    h = int(hashlib.sha256(f"{HELDOUT_SALT}:{key}".encode()).hexdigest(), 16)
    return "heldout" if h % 3 == 0 else "tune"


def iu_sentences(reports: list[tuple[str, str]] | None = None) -> list[tuple[str, str]]:
    """Every distinct sentence (report file, sentence text) of the IU reports, as the extractor cuts them."""
    if reports is None:
        from medslip.triplets.iu import iu_reports
        reports = iu_reports()
    seen: set[str] = set()
    out: list[tuple[str, str]] = []
    for name, text in reports:
        body = sections(text)
        for m in _SENTENCE_RE.finditer(body):
            s = " ".join(m.group().split())
            key = s.lower()
            if len(re.findall(r"[a-z]{2,}", key)) < 2 or key in seen:
                continue
            seen.add(key)
            out.append((name, s))
    return out


def sample_candidates(seed: int = SEED, strata: dict[str, int] | None = None,
                      reports: list[tuple[str, str]] | None = None, exclude: frozenset[str] = frozenset()
                      ) -> list[dict]:
    """The stratified draw: each distinct sentence (not in ``exclude``, lower-cased) goes to its first matching
    stratum, then ``strata[k]`` sentences are drawn per stratum with ``random.Random(seed)``."""
    strata = strata or STRATA
    pools: dict[str, list[tuple[str, str]]] = {k: [] for k in strata}
    for name, s in iu_sentences(reports):
        low = s.lower()
        if low in exclude:
            continue
        for k in strata:
            if _STRATUM_RE[k].search(low):
                pools[k].append((name, s))
                break
    rng = random.Random(seed)
    out: list[dict] = []
    for k, n in strata.items():
        for name, s in rng.sample(pools[k], min(n, len(pools[k]))):
            out.append({"report": name, "stratum": k, "split": split_of(s), "sentence": s})
    return out


def all_draws(reports: list[tuple[str, str]] | None = None) -> list[dict]:
    """Every draw of :data:`DRAWS` in order, each excluding the sentences of the earlier ones."""
    if reports is None:
        from medslip.triplets.iu import iu_reports
        reports = iu_reports()
    out: list[dict] = []
    for seed, strata in DRAWS:
        out.extend(sample_candidates(seed, strata, reports, frozenset(c["sentence"].lower() for c in out)))
    return out


@dataclass(frozen=True)
class GoldSentence:
    id: str
    report: str
    stratum: str
    split: str
    sentence: str
    cells: frozenset[tuple[str, str, str]]  # (status, observation, anatomy)


def load_gold(path: str | Path | None = None) -> list[GoldSentence]:
    """Read and validate a gold file (unknown observation / anatomy / status raise with the line number)."""
    p = Path(path) if path is not None else default_gold_path()
    out: list[GoldSentence] = []
    for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        d = json.loads(line)
        cells = set()
        for st, obs, anat in d["cells"]:
            if st not in ("p", "a", "u") or obs not in OBSERVATION_INDEX or anat not in ANATOMY_INDEX:
                raise ValueError(f"{p}:{i}: bad cell {[st, obs, anat]!r}")
            cells.add((st, obs, anat))
        out.append(GoldSentence(d["id"], d["report"], d["stratum"], d["split"], d["sentence"], frozenset(cells)))
    return out


def predicted_cells(sentence: str, rules: Rules | None = None) -> dict[tuple[str, str], int]:
    """The matrix cells (observation, anatomy) -> 1 / 0 the extractor sets for one sentence."""
    cells: dict[tuple[str, str], int] = {}
    for m in extract_mentions(sentence, rules):
        v = _STATUS.get(m.status[0])
        if v is None:
            continue
        key = (m.observation, m.anatomy)
        if v == 1 or cells.get(key) != 1:
            cells[key] = v
    return cells


def gold_cells(g: GoldSentence) -> dict[tuple[str, str], int]:
    cells: dict[tuple[str, str], int] = {}
    for st, obs, anat in g.cells:
        v = _STATUS.get(st)
        if v is not None and (v == 1 or cells.get((obs, anat)) != 1):
            cells[(obs, anat)] = v
    return cells


def _sides(cells: dict[tuple[str, str], int], obs: str) -> frozenset[str]:
    return frozenset(s for (o, a) in cells if o == obs and (s := side_of(a)) is not None)


def score(gold: list[GoldSentence], rules: Rules | None = None, errors: list | None = None) -> dict[str, float]:
    """Scores of the extractor against ``gold``.

    - ``present_p`` / ``present_r`` (and ``absent_*``): cell-level precision and recall of 1 (0) cells,
      pooled over sentences; a cell is (observation, anatomy) of one sentence.
    - ``side_acc``: over every (sentence, observation) whose gold cells (present or absent) include a sided
      anatomy row: the fraction whose predicted cells for that observation name exactly the same sides.
    - ``normal_fp``: over the *normal* sentences (no present abnormal cell in the gold; abnormal = any
      observation but the eight normal ones and excluded_obs): the fraction with a predicted present
      abnormal cell.
    ``errors``, when a list, receives ``(gold sentence, missed cells, extra cells)`` for wrong sentences.
    """
    r = rules or default_rules()
    tp = Counter()
    fp = Counter()
    fn = Counter()
    sided = sided_ok = normal = normal_bad = 0
    for g in gold:
        want, got = gold_cells(g), predicted_cells(g.sentence, r)
        for v in (1, 0):
            w = {k for k, x in want.items() if x == v}
            h = {k for k, x in got.items() if x == v}
            tp[v] += len(w & h)
            fp[v] += len(h - w)
            fn[v] += len(w - h)
        for obs in {o for (o, _a) in want}:
            ws = _sides(want, obs)
            if ws:
                sided += 1
                sided_ok += ws == _sides(got, obs)
        if not any(v == 1 and o not in NOT_ABNORMAL for (o, _a), v in want.items()):
            normal += 1
            normal_bad += any(v == 1 and o not in NOT_ABNORMAL for (o, _a), v in got.items())
        if errors is not None and want != got:
            errors.append((g, sorted(set(want.items()) - set(got.items())),
                           sorted(set(got.items()) - set(want.items()))))

    def ratio(a: int, b: int) -> float:
        return a / b if b else float("nan")

    return {
        "sentences": len(gold),
        "present_p": ratio(tp[1], tp[1] + fp[1]), "present_r": ratio(tp[1], tp[1] + fn[1]),
        "absent_p": ratio(tp[0], tp[0] + fp[0]), "absent_r": ratio(tp[0], tp[0] + fn[0]),
        "present_cells": tp[1] + fn[1], "absent_cells": tp[0] + fn[0],
        "side_acc": ratio(sided_ok, sided), "sided_findings": sided,
        "normal_fp": ratio(normal_bad, normal), "normal_sentences": normal,
    }


def format_scores(name: str, s: dict[str, float]) -> str:
    return (f"{name:8s} n={s['sentences']:3d}  present P {s['present_p']:.3f} R {s['present_r']:.3f} "
            f"({s['present_cells']} cells)  absent P {s['absent_p']:.3f} R {s['absent_r']:.3f} "
            f"({s['absent_cells']} cells)  side acc {s['side_acc']:.3f} ({s['sided_findings']})  "
            f"abnormal FP on normal {s['normal_fp']:.3%} ({s['normal_sentences']})")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m medslip.triplets.gold", description=__doc__.split("\n")[0])
    ap.add_argument("--gold", type=Path, default=None, help="gold JSONL (default: tests/triplets/data/gold.jsonl)")
    ap.add_argument("--split", choices=("all", "tune", "heldout"), default="all")
    ap.add_argument("--draw", type=int, default=0, metavar="D",
                    help="score only the sentences of draw D (1-%d, in the order of DRAWS)" % len(DRAWS))
    ap.add_argument("--errors", action="store_true",
                    help="print the sentences the extractor gets wrong (of the tune split, unless --split heldout)")
    ap.add_argument("--sample", type=int, default=0, metavar="N",
                    help="print the first N candidates of the stratified draw instead of scoring")
    a = ap.parse_args(argv)
    if a.sample:
        for i, c in enumerate(all_draws()[: a.sample]):
            print(json.dumps({"id": f"g{i:04d}", **c}))
        return 0
    path = a.gold or default_gold_path()
    if not path.is_file():
        print(f"error: gold file {path} not found", file=sys.stderr)
        return 2
    gold = load_gold(path)
    if a.draw:
        if not 1 <= a.draw <= len(DRAWS):
            print(f"error: --draw {a.draw}: there are draws 1-{len(DRAWS)}", file=sys.stderr)
            return 2
        gold = [g for g in gold if draw_of(g.id) == a.draw]
    splits = ("tune", "heldout", "all") if a.split == "all" else (a.split,)
    for sp in splits:
        part = [g for g in gold if sp == "all" or g.split == sp]
        errs: list = []
        print(format_scores(sp, score(part, errors=errs)))
        if a.errors and sp == ("tune" if a.split == "all" else a.split):  # held-out only when asked for
            for g, missed, extra in errs:
                print(f"  [{g.id} {g.split}] {g.sentence}\n     missed {missed}\n     extra  {extra}")
    return 0


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except BrokenPipeError:  # the reader of a pipe stopped early (``... --errors | head``): no traceback
        import os
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # the flush at exit would raise again
        raise SystemExit(0)
