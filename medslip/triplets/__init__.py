"""Triplet extraction: radiology report -> (anatomy, observation, status) -> MeDSLIP's 51 x 75 matrix.

Public entry points:

- :func:`report_to_matrix` -- report text -> ``np.int8`` array (51, 75) with values in {-1, 0, 1};
- :func:`extract_mentions` -- the :class:`Mention` list behind the matrix, with sentences, for
  explanations;
- :func:`sections` -- the part of the report that is read;
- :mod:`medslip.triplets.radgraph` -- the same matrix from RadGraph JSON;
- :mod:`medslip.triplets.gold` -- the hand-annotated IU gold sentences and their scorer
  (``python -m medslip.triplets.gold``).

The rules live in ``rules.yaml`` in this package (see ``docs/triplets.md``). This package never
imports :mod:`cxrbench`.
"""

from medslip.triplets.extract import (
    ABSENT, PRESENT, UNCERTAIN, Mention, extract_mentions, mentions_to_matrix, report_to_matrix, sections,
)
from medslip.triplets.rules import Rules, compile_rules, default_rules, load_raw

__all__ = [
    "ABSENT", "PRESENT", "UNCERTAIN", "Mention", "Rules", "compile_rules", "default_rules", "extract_mentions",
    "load_raw", "mentions_to_matrix", "report_to_matrix", "sections",
]
