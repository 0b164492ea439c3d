"""Same seed -> same bytes, for every file type of every dataset; another seed -> different images."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from cxrbench.synth import DATASETS, generate


def _digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("dataset", list(DATASETS))
def test_same_seed_same_bytes(tmp_path, dataset):
    a = _digest(generate(dataset, tmp_path / "a", n=8, size=64, seed=11, progress=False))
    b = _digest(generate(dataset, tmp_path / "b", n=8, size=64, seed=11, progress=False))
    assert a == b
    suffixes = {Path(k).suffix for k in a} | {"".join(Path(k).suffixes[-2:]) for k in a}
    assert suffixes & {".png", ".jpg", ".dcm"}
    c = _digest(generate(dataset, tmp_path / "c", n=8, size=64, seed=12, progress=False))
    assert a != c


def test_all_file_types_covered(corpora):
    kinds = {p.name.split(".", 1)[-1] if p.name.endswith(".gz") else p.suffix
             for root in corpora.values() for p in root.rglob("*") if p.is_file()}
    assert {".png", ".jpg", ".dcm", ".csv", ".txt", ".json", ".npy", ".jsonl"} <= kinds
    assert "csv.gz" in kinds or any(k.endswith("csv.gz") for k in kinds)


def test_refuses_non_empty_folder(tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError):
        generate("nih-cxr14", tmp_path / "x", n=2, size=64, progress=False)
