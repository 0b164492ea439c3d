"""The prompt sets BioViL's published code uses for zero-shot classification (data).

hi-ml's zero-shot example (``test_multimodal/vlp/test_zero_shot_classification.py``, the one its README cites)
scores pneumonia with these two sets; it publishes no others. Keys are lower-case class names.
"""

from __future__ import annotations

PUBLISHED_PROMPTS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "pneumonia": (
        ("Findings consistent with pneumonia", "Findings suggesting pneumonia",
         "This opacity can represent pneumonia", "Findings are most compatible with pneumonia"),
        ("There is no pneumonia", "No evidence of pneumonia", "No evidence of acute pneumonia",
         "No signs of pneumonia"),
    ),
}


def published_prompts(label: str) -> tuple[tuple[str, ...], tuple[str, ...]] | None:
    """The published (positive, negative) sets of a class, or None when the code publishes none for it."""
    return PUBLISHED_PROMPTS.get(label.strip().lower().replace("_", " "))


__all__ = ["PUBLISHED_PROMPTS", "published_prompts"]
