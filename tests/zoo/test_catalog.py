"""The zoo catalog and the `cxrbench zoo` commands that need no model: list, show, fetch, reference dispatch,
and the strict loader's readable diff."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from baselines.state_dict import StateDictMismatch, compare_shapes, load_strict, manifest_state_dict, strip_prefixes, unwrap
from cxrbench.cli import app
from cxrbench.zoo.catalog import CatalogError, load_catalog, parse_catalog
from medslip.checkpoint import CheckpointMismatch

from .conftest import WIDE

GOOD = """
m:
  family: chexzero
  paper: {citation: "A et al. 2022", url: "https://example.org/p"}
  architecture: ViT
  weights: {source: hf-hub, repo: org/m, revision: unverified, revision_note: "not checked", files: [w.bin], folder: hub}
  licence: {name: MIT, url: "https://example.org/l", non_commercial: false}
  settings: [zs]
  zero_shot_rules: [r]
"""


def test_shipped_catalog_is_valid_and_has_my_models():
    catalog = load_catalog()
    for name in ("chexzero", "biomedclip", "pubmedclip"):
        e = catalog[name]
        assert e.zero_shot_rules and e.settings <= {"zs", "ground", "ft", "seg"}
        assert e.weights.revision_verified or e.weights.source == "manual" or e.weights.revision_note
    assert catalog["chexzero"].licence.non_commercial  # Commons Clause
    assert catalog["chexzero"].default_rule == "chexzero-pair-softmax"


@pytest.mark.parametrize("edit, message", [
    (("revision: unverified, revision_note: \"not checked\"", "revision: abc123"), "40-hex"),
    (("revision_note: \"not checked\", ", ""), "revision_note"),
    (("settings: [zs]", "settings: [zs, dance]"), "settings"),
    (("source: hf-hub", "source: ftp"), "weights.source"),
    (("zero_shot_rules: [r]", "zero_shot_rules: [r]\n  colour: red"), "unknown field"),
    (("files: [w.bin], ", "files: [w.bin], checksums: {w.bin: {sha256: abc}}, "), "64 lower-case hex"),
])
def test_malformed_entries_are_named(edit, message):
    parse_catalog(GOOD)
    with pytest.raises(CatalogError, match=message) as info:
        parse_catalog(GOOD.replace(*edit))
    assert "'m'" in str(info.value)


def test_list_show_and_fetch(monkeypatch, no_network):
    runner = CliRunner()
    out = runner.invoke(app, ["zoo", "list"], env=WIDE)
    assert out.exit_code == 0 and "chexzero" in out.output and "non-commercial" in out.output
    out = runner.invoke(app, ["zoo", "show", "chexzero"], env=WIDE)
    assert out.exit_code == 0 and "1makFLiEMbSleYltaRxw81aBhEDMpVwno" in out.output
    out = runner.invoke(app, ["zoo", "show", "nope"], env=WIDE)
    assert out.exit_code == 2 and "unknown zoo model 'nope'" in out.output
    # manual weights: the steps and the folder, no download
    out = runner.invoke(app, ["zoo", "fetch", "chexzero"], env=WIDE)
    assert out.exit_code == 0 and "folder:" in out.output and "zoo/chexzero/checkpoints" in out.output
    # hub weights: refused without the flag (one line, exit 2)
    out = runner.invoke(app, ["zoo", "fetch", "biomedclip"], env=WIDE)
    assert out.exit_code == 2 and "--allow-download" in out.output and not no_network
    calls = []

    def fake_snapshot(**kwargs):
        calls.append(kwargs)
        return "/fake/snapshot"

    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot)
    out = runner.invoke(app, ["zoo", "fetch", "biomedclip", "--allow-download"], env=WIDE)
    assert out.exit_code == 0, out.output
    assert calls[0]["repo_id"] == "microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224"
    assert set(calls[0]["allow_patterns"]) == {"open_clip_pytorch_model.bin", "open_clip_config.json"}


def test_reference_of_a_missing_family_says_not_implemented(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "f.safetensors"
    save_file({"expected.x": torch.zeros(2)}, str(path), metadata={"model": "gloria"})
    from cxrbench.zoo import reference

    try:
        reference.reproducer("gloria")
    except reference.ReferenceUnavailable:
        out = CliRunner().invoke(app, ["zoo", "reference", str(path)], env=WIDE)
        assert out.exit_code == 2 and "not implemented" in out.output
    save_file({"expected.x": torch.zeros(2)}, str(path), metadata={"model": "nobody"})
    out = CliRunner().invoke(app, ["zoo", "reference", str(path)], env=WIDE)
    assert out.exit_code == 2 and "unknown" in out.output


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.visual = nn.Sequential(nn.Linear(2, 3), nn.Linear(3, 3))
        self.text = nn.Linear(3, 4)


def test_strict_load_groups_the_diff_and_loads_meta_manifests():
    model = Tiny()
    sd = {"module." + k: v for k, v in model.state_dict().items()}
    sd = strip_prefixes(unwrap({"state_dict": sd}))
    load_strict(model, sd)
    bad = dict(sd)
    bad["visual.0.wieght"] = bad.pop("visual.0.weight")  # renamed
    del bad["text.bias"]  # missing
    bad["visual.1.bias"] = torch.zeros(5)  # mis-shaped
    with pytest.raises(CheckpointMismatch) as info:
        load_strict(model, bad, source="f.pt")
    msg = str(info.value)
    assert isinstance(info.value, StateDictMismatch)
    assert "visual.0.weight" in msg and "visual.0.wieght" in msg and "text.bias" in msg
    assert "visual.1.bias: file [5] vs model [3]" in msg and "(f.pt)" in msg
    # a manifest (key -> shape) through the same check, on the meta device
    with torch.device("meta"):
        meta_model = Tiny()
    load_strict(meta_model, manifest_state_dict({k: list(v.shape) for k, v in model.state_dict().items()}))
    assert compare_shapes({"a": (1,)}, {"a": (1,)}) is None


def test_run_reports_bad_zoo_input_in_one_line(tmp_path):
    runner = CliRunner()
    base = ["run", "--model", "chexzero", "--task", "nih-zs", "--no-progress", "--out", str(tmp_path)]
    out = runner.invoke(app, [*base, "--checkpoint", str(tmp_path / "absent.pt")], env=WIDE)
    assert out.exit_code == 2 and "checkpoint not found" in out.output and "Traceback" not in out.output
    out = runner.invoke(app, [*base, "--checkpoint", "random-reduced", "--zero-shot-rule", "nope"], env=WIDE)
    assert out.exit_code == 2 and "chexzero-pair-softmax" in out.output
    out = runner.invoke(app, ["run", "--model", "chexzero", "--task", "siim-seg", "--checkpoint", "random-reduced",
                              "--out", str(tmp_path)], env=WIDE)
    assert out.exit_code == 2 and "does not support 'seg'" in out.output


def test_fetch_pins_a_verified_revision(monkeypatch, no_network):
    import huggingface_hub

    import cxrbench.zoo.catalog as catalog

    rev = "0123456789abcdef0123456789abcdef01234567"
    entries = parse_catalog(GOOD.replace('revision: unverified, revision_note: "not checked"', f"revision: {rev}"))
    monkeypatch.setattr(catalog, "load_catalog", lambda *a: entries)
    calls = []
    monkeypatch.setattr(huggingface_hub, "snapshot_download", lambda **kw: calls.append(kw) or "/fake")
    out = CliRunner().invoke(app, ["zoo", "fetch", "m", "--allow-download"], env=WIDE)
    assert out.exit_code == 0, out.output
    assert calls == [{"repo_id": "org/m", "revision": rev, "allow_patterns": ["w.bin"]}]


def test_one_spelling_for_the_reduced_random_model():
    """Every zoo model takes ``--checkpoint random-reduced``; the old per-family spellings still mean the same."""
    from cxrbench.zoo.adapters import RANDOM_REDUCED, REDUCED_ALIASES, canonical_checkpoint, random_kind
    from cxrbench.zoo.catalog import load_catalog

    named = {e.name: e.reduced["checkpoint"] for e in load_catalog().values() if e.reduced.get("checkpoint")}
    assert len(named) >= 4 and set(named.values()) == {RANDOM_REDUCED}, named
    for alias in REDUCED_ALIASES:
        assert canonical_checkpoint(alias) == RANDOM_REDUCED and random_kind(alias) == RANDOM_REDUCED
    assert canonical_checkpoint("random") == "random" and canonical_checkpoint("a.pt") == "a.pt"
