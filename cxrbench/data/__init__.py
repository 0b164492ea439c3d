"""Dataset adapters, image reading, splits, label fractions, preprocessing cache and preflight.

Import the registry with ``from cxrbench.data.registry import DATASETS``; adapters live one per module
(``nih``, ``rsna``, ``siim``, ``covidx``, ``mimic``, ``medslip_pretrain``).
"""
