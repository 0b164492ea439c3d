"""medslip.triplets: hand-written sentences with their expected cells, section parsing, matrix semantics."""

from __future__ import annotations

import numpy as np
import pytest

from medslip.triplets import compile_rules, extract_mentions, load_raw, report_to_matrix, sections
from medslip.triplets.extract import Mention, mentions_to_matrix
from medslip.vocab import ANATOMY_INDEX, OBSERVATION_INDEX

P, A, U = "present", "absent", "uncertain"

# sentence -> the exact set of (observation, anatomy, status) mentions it must give
CASES: list[tuple[str, set[tuple[str, str, str]]]] = [
    # negation scope
    ("No pleural effusion or pneumothorax.", {("effusion", "pleural_unspec", A), ("pneumothorax", "unspecified", A)}),
    ("No pneumothorax, pleural effusion, or focal consolidation.",
     {("pneumothorax", "unspecified", A), ("effusion", "pleural_unspec", A), ("consolidation", "unspecified", A)}),
    ("There is no evidence of pneumothorax.", {("pneumothorax", "unspecified", A)}),
    ("Negative for pneumonia.", {("pneumonia", "unspecified", A)}),
    ("The lungs are clear without focal consolidation.",
     {("clear", "left_lung_unspec", P), ("clear", "right_lung_unspec", P),
      ("consolidation", "left_lung_unspec", A), ("consolidation", "right_lung_unspec", A)}),
    ("Pleural effusions and pneumothorax are not seen.",
     {("effusion", "pleural_unspec", A), ("pneumothorax", "unspecified", A)}),
    ("Heart is enlarged and effusion is not seen.",
     {("cardiomegaly", "heart_size", P), ("effusion", "unspecified", A)}),
    ("The previously seen right pleural effusion has resolved.", {("effusion", "right_pleural", A)}),
    ("No pneumothorax, but there is a small left pleural effusion.",
     {("pneumothorax", "unspecified", A), ("effusion", "left_pleural", P)}),
    ("No effusion, lungs clear.",
     {("effusion", "unspecified", A), ("clear", "left_lung_unspec", P), ("clear", "right_lung_unspec", P)}),
    ("No change in the moderate right pleural effusion.", {("effusion", "right_pleural", P)}),
    ("The heart is not enlarged.", {("cardiomegaly", "heart_size", A)}),
    ("No acute cardiopulmonary process.", {("process", "cardiopulmonary", A)}),
    ("Lungs are clear of consolidation.",
     {("clear", "left_lung_unspec", P), ("clear", "right_lung_unspec", P),
      ("consolidation", "left_lung_unspec", A), ("consolidation", "right_lung_unspec", A)}),
    # uncertainty
    ("Right lower lobe opacity, possibly pneumonia.",
     {("opacity", "lower_right_lobe", P), ("pneumonia", "lower_right_lobe", U)}),
    ("Opacification in the right upper lobe may represent infection.",
     {("opacity", "upper_right_lobe", P), ("pneumonia", "upper_right_lobe", U)}),
    ("Pneumonia cannot be excluded.", {("pneumonia", "unspecified", U)}),
    ("A small left pleural effusion cannot be ruled out.", {("effusion", "left_pleural", U)}),
    ("Atelectasis versus pneumonia.", {("atelectasis", "unspecified", U), ("pneumonia", "unspecified", U)}),
    ("Likely atelectasis at the lung bases.", {("atelectasis", "lung_bases", U)}),
    ("Questionable left apical pneumothorax.", {("pneumothorax", "left_apical_lung", U)}),
    ("Viral pneumonia is possible.", {("pneumonia", "unspecified", U)}),
    ("No findings to suggest pneumonia.", {("finding", "unspecified", A), ("pneumonia", "unspecified", A)}),
    # laterality
    ("Bilateral pleural effusions.", {("effusion", "left_pleural", P), ("effusion", "right_pleural", P)}),
    ("Small bilateral effusions.", {("effusion", "left_pleural", P), ("effusion", "right_pleural", P)}),
    ("Small left base effusion.", {("effusion", "left_costophrenic", P)}),
    ("Atelectasis at the left base.", {("atelectasis", "left_lower_lung", P)}),
    ("Mild bibasilar atelectasis.", {("atelectasis", "lung_bases", P)}),
    ("Opacities in both lower lungs.", {("opacity", "left_lower_lung", P), ("opacity", "right_lower_lung", P)}),
    ("Patchy opacities bilaterally.", {("opacity", "left_lung_unspec", P), ("opacity", "right_lung_unspec", P)}),
    ("Blunting of the costophrenic angle on the right.", {("blunt", "right_costophrenic", P)}),
    ("Small left pneumothorax.", {("pneumothorax", "left_pleural", P)}),
    ("Consolidation in the right middle lobe and the left lower lobe.",
     {("consolidation", "middle_right_lobe", P), ("consolidation", "lower_left_lobe", P)}),
    ("Elevated right hemidiaphragm.", {("elevation", "right_diaphragm", P)}),
    # synonyms, lemmas, combine rules
    ("Enlarged heart.", {("cardiomegaly", "heart_size", P)}),
    ("The cardiac silhouette is mildly enlarged.", {("cardiomegaly", "heart_size", P)}),
    ("Mild enlargement of the cardiac silhouette.", {("cardiomegaly", "heart_size", P)}),
    ("Pulmonary vascular congestion.", {("congestion", "pulmonary", P)}),
    ("Low lung volumes.", {("low", "lung_volumes", P)}),
    ("Hyperinflated lungs.", {("hyperinflate", "left_lung_unspec", P), ("hyperinflate", "right_lung_unspec", P)}),
    ("Calcified granuloma in the right upper lobe.",
     {("calcification", "upper_right_lobe", P), ("tail_abnorm_obs", "upper_right_lobe", P)}),
    ("Mild pulmonary fibrosis.", {("tail_abnorm_obs", "pulmonary", P)}),
    ("No focal airspace disease.", {("disease", "unspecified", A)}),
    ("Tortuous aorta.", {("tortuous", "aorta", P)}),
    ("An endotracheal tube terminates in the trachea.", {("tube", "trachea", P)}),
    ("Leads terminate in the right atrium and right ventricle.",
     {("lead", "right_atrium", P), ("lead", "right_ventricle", P)}),
    ("Degenerative changes of the thoracic spine.", {("degenerative", "spine", P)}),
    ("Postoperative changes.", {("excluded_obs", "unspecified", P)}),
    # normal statements
    ("Heart size is normal.", {("normal", "heart_size", P)}),
    ("The cardiomediastinal silhouette is within normal limits.",
     {("normal", "heart_size", P), ("normal", "mediastinal", P)}),
    ("Costophrenic angles are sharp.", {("sharp", "costophrenic_unspec", P)}),
    ("Hilar contours are unremarkable.", {("unremarkable", "hilar_unspec", P)}),
    ("The osseous structures are intact.", {("intact", "other", P)}),
    ("Stable cardiomegaly.", {("stable", "heart_size", P), ("cardiomegaly", "heart_size", P)}),
    ("The lungs are free of focal airspace disease.",
     {("free", "left_lung_unspec", P), ("free", "right_lung_unspec", P),
      ("disease", "left_lung_unspec", A), ("disease", "right_lung_unspec", A)}),
    ("Normal chest radiograph.", {("normal", "unspecified", P)}),
    ("The heart and mediastinum are normal.", {("normal", "heart_size", P), ("normal", "mediastinal", P)}),
    # an "and" between two places does not end the finding an interpretation refers to
    ("There is mild haziness in the right lung and left base, which could represent infiltrate.",
     {("opacity", "right_lung_unspec", P), ("opacity", "left_lower_lung", P),
      ("infiltrate", "right_lung_unspec", U), ("infiltrate", "left_lower_lung", U)}),
    # a postposed status after "again noted," is at the finding's place
    ("Left base opacities again noted, stable.", {("opacity", "left_lower_lung", P), ("stable", "left_lower_lung", P)}),
    # "suprahilar" mirrors "infrahilar" (the zone above the hilum)
    ("Stable right suprahilar opacity.", {("opacity", "right_upper_lung", P), ("stable", "right_upper_lung", P)}),
    # a list of readings keeps the host across "and"; "juxtahilar" is hilar; "increasing" is a modifier word
    ("Low lung volumes with streaky left basilar opacity, likely subsegmental atelectasis and scarring.",
     {("low", "lung_volumes", P), ("opacity", "left_lower_lung", P), ("atelectasis", "left_lower_lung", U),
      ("scar", "left_lower_lung", U)}),
    ("Small right juxtahilar opacity may represent infiltrate.",
     {("opacity", "right_hilar", P), ("infiltrate", "right_hilar", U)}),
    ("Bilateral increasing consolidations.",
     {("consolidation", "left_lung_unspec", P), ("consolidation", "right_lung_unspec", P)}),
    # two zones named with one noun
    ("There is scarring in the right mid and upper lung zone.",
     {("scar", "right_mid_lung", P), ("scar", "right_upper_lung", P)}),
]


@pytest.mark.parametrize("sentence, expected", CASES, ids=[c[0][:40] for c in CASES])
def test_sentence_mentions(sentence: str, expected: set[tuple[str, str, str]]) -> None:
    got = {(m.observation, m.anatomy, m.status) for m in extract_mentions(sentence)}
    assert got == expected


def test_mention_sentence_and_span() -> None:
    text = "FINDINGS: Heart size is normal.  Small left pleural effusion."
    body = sections(text)
    ms = extract_mentions(text)
    eff = [m for m in ms if m.observation == "effusion"][0]
    assert isinstance(eff, Mention)
    assert eff.sentence == "Small left pleural effusion."
    assert body[eff.span[0]:eff.span[1]].lower() == "effusion"


MIMIC = """                                 FINAL REPORT
 EXAMINATION:  CHEST (PA AND LAT)
 
 INDICATION:  ___ year old man with cough  // ?pneumonia
 
 TECHNIQUE:  Chest PA and lateral
 
 COMPARISON:  ___
 
 FINDINGS: 
 
 Heart size is normal.  There is a new opacity in the right lower lobe.  Small
 right pleural effusion.  No pneumothorax.  The left lung is clear.
 
 IMPRESSION: 
 
 Right lower lobe opacity, possibly pneumonia.
"""


def test_sections_mimic_layout() -> None:
    body = sections(MIMIC)
    assert body.startswith("Heart size is normal.")
    assert "INDICATION" not in body and "?pneumonia" not in body and "cough" not in body
    assert body.rstrip().endswith("possibly pneumonia.")
    got = {(m.observation, m.anatomy, m.status) for m in extract_mentions(MIMIC)}
    assert got == {("normal", "heart_size", P), ("opacity", "lower_right_lobe", P), ("effusion", "right_pleural", P),
                   ("pneumothorax", "unspecified", A), ("clear", "left_lung_unspec", P),
                   ("pneumonia", "lower_right_lobe", U)}


def test_sections_variants() -> None:
    combined = " INDICATION: eval for pneumonia\n FINDINGS AND IMPRESSION: \n No pneumothorax.\n"
    assert sections(combined) == "No pneumothorax."
    impression_only = " INDICATION: effusion?\n \n IMPRESSION:  Small left effusion.\n"
    assert sections(impression_only) == "Small left effusion."
    no_headers = "The lungs are clear. No effusion."
    assert sections(no_headers) == no_headers
    # no FINDINGS/IMPRESSION: the whole text minus history-type sections
    other = "                                 FINAL REPORT\n INDICATION: r/o pneumonia\n \n NOTE: Lungs are clear.\n"
    assert sections(other) == "Lungs are clear."
    # a sentence never runs across two sections
    two = " FINDINGS: No effusion\n IMPRESSION: Pneumothorax.\n"
    got = {(m.observation, m.status) for m in extract_mentions(two)}
    assert got == {("effusion", A), ("pneumothorax", P)}


def test_matrix_semantics() -> None:
    # 1 wins over 0 in the same cell; uncertain leaves -1; shape and dtype
    text = "Small left pleural effusion. No left pleural effusion. Possible pneumonia. No pneumothorax."
    mat = report_to_matrix(text)
    assert mat.shape == (51, 75) and mat.dtype == np.int8
    assert mat[ANATOMY_INDEX["left_pleural"], OBSERVATION_INDEX["effusion"]] == 1
    assert mat[ANATOMY_INDEX["unspecified"], OBSERVATION_INDEX["pneumonia"]] == -1
    assert mat[ANATOMY_INDEX["unspecified"], OBSERVATION_INDEX["pneumothorax"]] == 0
    assert (mat == 1).sum() == 1 and (mat == 0).sum() == 1
    order = [Mention("effusion", "left_pleural", P, "", (0, 0)), Mention("effusion", "left_pleural", A, "", (0, 0))]
    assert mentions_to_matrix(order)[4, 8] == 1 and mentions_to_matrix(order[::-1])[4, 8] == 1


def test_empty_and_odd_inputs() -> None:
    for text in ("", "   ", "FINDINGS:", "...", "XXXX XXXX.", "1. 2. 3.", "\u0130stanbul \u00e9panchement"):
        mat = report_to_matrix(text)
        assert mat.shape == (51, 75) and (mat == -1).all()


def test_rule_table_is_validated() -> None:
    raw = load_raw()
    rules = compile_rules(raw)
    assert "effusion" in {p for k, p in rules.table.values() if k == 0}
    bad = dict(raw, observations=dict(raw["observations"], effusion=["effusion", "pneumothorax"]))
    with pytest.raises(ValueError, match="conflicts"):
        compile_rules(bad)
    bad = dict(raw, observation_defaults={"not_an_observation": {"none": ["unspecified"]}})
    with pytest.raises(ValueError, match="unknown observation"):
        compile_rules(bad)
    bad = dict(raw, cues=dict(raw["cues"], negation_pre=[False]))  # YAML's bare `no`
    with pytest.raises(ValueError, match="quote"):
        compile_rules(bad)
    bad = dict(raw, deidentification=dict(raw["deidentification"], phrases={"superior vena": "svc"}))
    with pytest.raises(ValueError, match="holds no mask"):
        compile_rules(bad)


def test_custom_rules_are_used() -> None:
    raw = load_raw()
    raw["observations"] = dict(raw["observations"], effusion=raw["observations"]["effusion"] + ["hydrothorax"])
    rules = compile_rules(raw)
    got = {(m.observation, m.anatomy, m.status) for m in extract_mentions("Right hydrothorax.", rules)}
    assert got == {("effusion", "right_pleural", P)}


def test_sentence_split_pattern_is_unchanged():
    """The sentence pattern takes runs of ordinary characters whole; it must split exactly as the pattern that
    takes one character at a time (the definition: up to ". " / "? " / "! " or a blank line; "vs." and decimals
    do not end a sentence)."""
    import random
    import re

    from medslip.triplets.extract import _SENTENCE_RE

    one_at_a_time = re.compile(r"(?:[^.?!\n]|(?<=\bvs)\.|\.(?!\s|$)|\n(?![ \t]*\n))+[.?!]?")
    rnd = random.Random(0)
    texts = ["left vs. right. next", "1.5 cm nodule. e.g. the", "a\n\nb", "a\n b.", "...", "no? yes! x"]
    texts += ["".join(rnd.choice("ab .?!\n\tvs5") for _ in range(rnd.randint(0, 40))) for _ in range(5000)]
    for text in texts:
        assert _SENTENCE_RE.findall(text) == one_at_a_time.findall(text), repr(text)
