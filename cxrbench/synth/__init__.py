"""SynthCXR: procedural chest radiographs with known findings, masks, reports and the real dataset formats.

Public API::

    generate(dataset, out_dir, n=None, size=None, seed=0, progress=True) -> Path
    default_root(dataset, n=None, size=None, seed=0, progress=True) -> Path   # cached embedded default
    render_case(rng, site="nih", height=256, ...) -> Case                      # one image + finding masks
    write_report(rng, findings, view, sex) -> Report                            # text + mentions + matrix
"""

from __future__ import annotations

from .corpus import DATASETS, GENERATOR_VERSION, default_root, generate
from .render import Case, render_case
from .reports import Mention, Report, mentions_to_matrix, write_report

__all__ = ["DATASETS", "GENERATOR_VERSION", "Case", "Mention", "Report", "default_root", "generate",
           "mentions_to_matrix", "render_case", "write_report"]
