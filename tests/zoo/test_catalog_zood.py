"""The catalog entries of medklip, gloria and medslip-released: the zoo schema, honest provenance, and the adapters
they name."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

CATALOG = Path(__file__).resolve().parents[2] / "cxrbench" / "zoo" / "catalog.yaml"
KEYS = {"family", "paper", "architecture", "weights", "licence", "text_tower", "settings", "zero_shot_rules",
        "reduced", "gaps"}
WEIGHT_KEYS = {"source", "repo", "revision", "revision_note", "files", "url", "steps", "folder", "checksums"}
ADAPTER = {"medklip": "medklip", "gloria": "gloria", "medslip-released": "medslip"}


@pytest.mark.parametrize("name", sorted(ADAPTER))
def test_entry_follows_the_schema_and_names_a_registered_adapter(name):
    from cxrbench.models.registry import get_model

    entry = yaml.safe_load(CATALOG.read_text())[name]
    assert set(entry) <= KEYS and set(entry["weights"]) == WEIGHT_KEYS
    weights = entry["weights"]
    assert weights["source"] in ("hf-hub", "manual") and weights["url"].startswith("https://")
    if weights["revision"] in (None, "unverified"):  # never an invented pin
        assert "unverified" in weights["revision_note"]
    assert weights["checksums"] == {}  # no published checksums for these files
    assert set(entry["licence"]) == {"name", "url", "non_commercial"}
    assert set(entry["settings"]) <= get_model(ADAPTER[name]).settings
    assert all(set(g) == {"text", "url"} and g["url"].startswith("https://") for g in entry["gaps"])


def test_medklip_entry_records_the_known_cxr14_gap():
    gaps = yaml.safe_load(CATALOG.read_text())["medklip"]["gaps"]
    urls = {g["url"] for g in gaps}
    assert {"https://github.com/MediaBrain-SJTU/MedKLIP/issues/12",
            "https://github.com/MediaBrain-SJTU/MedKLIP/issues/17"} <= urls
    assert any("0.7233" in g["text"] and "0.7676" in g["text"] for g in gaps)


def test_released_medslip_is_on_the_hub_and_non_commercial():
    entry = yaml.safe_load(CATALOG.read_text())["medslip-released"]
    assert entry["weights"]["source"] == "hf-hub" and entry["weights"]["repo"] == "pykale/MeDSLIP"
    assert entry["licence"]["non_commercial"] is True
