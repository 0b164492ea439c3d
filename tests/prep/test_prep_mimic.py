"""``cxrbench prep mimic`` on a small synthetic MIMIC-CXR-JPG folder (SynthCXR, 40 studies, 64 px)."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from cxrbench import prep
from cxrbench.cli import app
from cxrbench.data.registry import DATASETS
from cxrbench.prep import PrepError, prepare_mimic
from medslip.pretrain import read_published_split
from medslip.triplets.radgraph import radgraph_entry_to_matrix

N = 40
OUTPUTS = ("train.json", "valid.json", "test.json", "landmark_observation_adj_mtx.npy",
           "landmark_observation_sids.npy", "study_ids.txt", "prep_manifest.json")
JSON_SPLIT = {"train.json": "train", "valid.json": "validate", "test.json": "test"}


@pytest.fixture(scope="module")
def mimic_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A synthetic MIMIC-CXR-JPG folder with reports and ground-truth matrices (read-only for the tests)."""
    from cxrbench.synth import generate

    return generate("mimic-cxr", tmp_path_factory.mktemp("synth") / "mimic", n=N, size=64, seed=0, progress=False)


@pytest.fixture()
def own_root(mimic_root: Path, tmp_path: Path) -> Path:
    """A private copy of the synthetic folder, for tests that change it."""
    return Path(shutil.copytree(mimic_root, tmp_path / "mimic"))


def truth_by_study(root: Path) -> dict[str, np.ndarray]:
    """The generator's own matrices, keyed by study id."""
    records = [json.loads(line) for line in (root / "synthcxr_truth.jsonl").read_text().splitlines()]
    matrices = np.load(root / "synthcxr_matrices.npy")
    return {str(r["study_id"]): m for r, m in zip(records, matrices, strict=True)}


def snapshot(folder: Path, skip: Path | None = None) -> dict[str, tuple[int, int]]:
    """``{relative path: (size, mtime_ns)}`` of every file under ``folder`` (minus ``skip``)."""
    out = {}
    for path in folder.rglob("*"):
        if skip is not None and (path == skip or skip in path.parents):
            continue
        stat = path.stat()
        out[str(path.relative_to(folder))] = (stat.st_size if path.is_file() else -1, stat.st_mtime_ns)
    return out


def read_bytes(out: Path) -> dict[str, bytes]:
    return {name: (out / name).read_bytes() for name in OUTPUTS}


def split_table(root: Path) -> pd.DataFrame:
    return pd.read_csv(root / "mimic-cxr-2.0.0-split.csv.gz", dtype={"dicom_id": str})


def test_cli_writes_files_the_loaders_read(mimic_root: Path, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    before = snapshot(mimic_root)
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["prep", "mimic", "--root", str(mimic_root), "--out", str(out),
                                      "--workers", "1"])
    assert result.exit_code == 0, result.output
    assert f"computed {N} studies" in result.output

    # nothing written outside --out: the dataset folder, the working directory, the rest of tmp_path
    assert snapshot(mimic_root) == before
    assert list(cwd.iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cwd", "out"]
    assert sorted(p.name for p in out.iterdir()) == sorted([*OUTPUTS, ".partial"])

    matrix = np.load(out / "landmark_observation_adj_mtx.npy")
    assert matrix.shape == (N, 51, 75) and matrix.dtype == np.float64
    assert set(np.unique(matrix)) <= {-1.0, 0.0, 1.0}
    study_ids = (out / "study_ids.txt").read_text().split()
    assert study_ids == np.load(out / "landmark_observation_sids.npy").tolist()
    assert len(set(study_ids)) == N

    # the pre-training loader: published-split reader + the matrix; matrices equal the generator's truth
    truth = truth_by_study(mimic_root)
    seen = 0
    for name in JSON_SPLIT:
        paths, rows = read_published_split(out / name)
        for path, row in zip(paths, rows, strict=True):
            assert Path(path).is_absolute() and Path(path).is_file()
            study = Path(path).parent.name[1:]
            assert study_ids[row] == study
            np.testing.assert_array_equal(matrix[row], truth[study].astype(np.float64))
            seen += 1
    assert seen == N

    # the dataset adapter
    table = DATASETS["medslip-pretrain"].load(out)
    assert len(table) == N and table["path"].map(lambda p: Path(p).is_file()).all()
    assert table["labels_id"].nunique() == N


def test_splits_follow_official_csv(mimic_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    prepare_mimic(mimic_root, out, workers=1, progress=False)
    official = dict(zip(split_table(mimic_root)["dicom_id"], split_table(mimic_root)["split"]))
    found = {}
    for name, split in JSON_SPLIT.items():
        for path in json.loads((out / name).read_text()):
            found[Path(path).stem] = split
    assert found == official
    assert set(found.values()) == {"train", "validate", "test"}


def test_resume_reuses_partials_and_gives_identical_bytes(mimic_root: Path, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out"
    # an interrupted first run: the third chunk fails, two chunks (16 studies) are saved
    real = prep._process_chunk
    calls = {"n": 0}

    def flaky(task: prep.ChunkTask) -> tuple[int, int, list[str]]:
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(task)

    monkeypatch.setattr(prep, "_process_chunk", flaky)
    with pytest.raises(KeyboardInterrupt):
        prepare_mimic(mimic_root, out, workers=1, chunk_size=8, progress=False)
    monkeypatch.setattr(prep, "_process_chunk", real)
    assert len(list((out / ".partial").glob("chunk-*.npz"))) == 2
    assert not (out / "train.json").exists()

    first = prepare_mimic(mimic_root, out, workers=1, chunk_size=8, progress=False)
    assert (first.computed_studies, first.reused_studies, first.chunks) == (N - 16, 16, 5)
    reference = read_bytes(out)

    for name in OUTPUTS:  # final outputs gone, partials kept: nothing is recomputed
        (out / name).unlink()
    again = prepare_mimic(mimic_root, out, workers=1, chunk_size=8, progress=False)
    assert (again.computed_studies, again.reused_studies) == (0, N)
    assert read_bytes(out) == reference

    (out / ".partial" / "chunk-000001.npz").unlink()  # one chunk lost: only its 8 studies are redone
    (out / ".partial" / "chunk-000004.npz").write_bytes(b"damaged")  # a damaged one is redone, too
    partly = prepare_mimic(mimic_root, out, workers=1, chunk_size=8, progress=False)
    assert partly.computed_studies == 16
    assert read_bytes(out) == reference

    with pytest.raises(PrepError, match="--force"):  # partials of another chunking are refused ...
        prepare_mimic(mimic_root, out, workers=1, chunk_size=16, progress=False)
    forced = prepare_mimic(mimic_root, out, workers=1, chunk_size=16, force=True, progress=False)
    assert forced.computed_studies == N  # ... unless --force restarts
    assert read_bytes(out) == reference


def test_parallel_workers_give_the_same_bytes(mimic_root: Path, tmp_path: Path) -> None:
    prepare_mimic(mimic_root, tmp_path / "serial", workers=1, chunk_size=10, progress=False)
    result = CliRunner().invoke(app, ["prep", "mimic", "--root", str(mimic_root), "--out", str(tmp_path / "par"),
                                      "--workers", "2", "--chunk-size", "10"])
    assert result.exit_code == 0, result.output
    assert read_bytes(tmp_path / "par") == read_bytes(tmp_path / "serial")


def test_every_image_of_a_study_maps_to_its_row(own_root: Path, tmp_path: Path) -> None:
    split, meta_path = split_table(own_root), own_root / "mimic-cxr-2.0.0-metadata.csv.gz"
    meta = pd.read_csv(meta_path, dtype={"dicom_id": str})
    extra_split, extra_meta = [], []
    for k, row in split.head(3).iterrows():  # a lateral view for three studies
        new_id = f"{k:08x}-0000000{k}-00000000-00000000-00000000"
        folder = own_root / f"files/p{str(row.subject_id)[:2]}/p{row.subject_id}/s{row.study_id}"
        shutil.copy(folder / f"{row.dicom_id}.jpg", folder / f"{new_id}.jpg")
        extra_split.append({**row.to_dict(), "dicom_id": new_id})
        extra_meta.append({**meta[meta.dicom_id == row.dicom_id].iloc[0].to_dict(), "dicom_id": new_id,
                           "ViewPosition": "LATERAL"})
    for frame, path in ((pd.concat([split, pd.DataFrame(extra_split)]), own_root / "mimic-cxr-2.0.0-split.csv.gz"),
                        (pd.concat([meta, pd.DataFrame(extra_meta)]), meta_path)):
        with gzip.open(path, "wt") as fh:
            frame.to_csv(fh, index=False)
    out = tmp_path / "out"
    result = prepare_mimic(own_root, out, workers=1, progress=False)
    assert result.studies == N and sum(result.images.values()) == N + 3
    rows_by_study: dict[str, set[int]] = {}
    for name in JSON_SPLIT:
        paths, rows = read_published_split(out / name)
        for path, row in zip(paths, rows):
            rows_by_study.setdefault(Path(path).parent.name, set()).add(int(row))
    assert all(len(rows) == 1 for rows in rows_by_study.values())
    for row in split.head(3).itertuples():
        assert sum(1 for name in JSON_SPLIT for p in json.loads((out / name).read_text())
                   if f"/s{row.study_id}/" in p) == 2


def _ent(tokens: str, label: str, ix: int, *relations: tuple[str, str]) -> dict:
    return {"tokens": tokens, "label": label, "start_ix": ix, "end_ix": ix + len(tokens.split()) - 1,
            "relations": [list(r) for r in relations]}


def test_radgraph_input(mimic_root: Path, tmp_path: Path) -> None:
    split = split_table(mimic_root)
    entries = [
        {"text": "Small left pleural effusion .", "entities": {
            "1": _ent("left", "ANAT-DP", 1, ("modify", "2")), "2": _ent("pleural", "ANAT-DP", 2),
            "3": _ent("effusion", "OBS-DP", 3, ("located_at", "2"))}},
        {"text": "No pneumothorax . Possible pneumonia .", "entities": {
            "1": _ent("pneumothorax", "OBS-DA", 1), "2": _ent("pneumonia", "OBS-U", 4)}},
        {"text": "Heart is enlarged .", "entities": {
            "1": _ent("Heart", "ANAT-DP", 0), "2": _ent("enlarged", "OBS-DP", 2, ("located_at", "1"))}},
    ]
    graphs = {}
    for k, row in enumerate(split.head(30).itertuples()):
        graphs[f"p{str(row.subject_id)[:2]}/p{row.subject_id}/s{row.study_id}.txt"] = entries[k % 3]
    graph_file = tmp_path / "MIMIC-CXR_graphs.json"
    graph_file.write_text(json.dumps(graphs))
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["prep", "mimic", "--root", str(mimic_root), "--out", str(out),
                                      "--workers", "1", "--radgraph", str(graph_file)])
    assert result.exit_code == 0, result.output
    assert "studies without radgraph 10" in result.output
    matrix = np.load(out / "landmark_observation_adj_mtx.npy")
    assert matrix.shape == (30, 51, 75)
    by_study = {f"{k.split('/')[-1][1:-4]}": radgraph_entry_to_matrix(v) for k, v in graphs.items()}
    n = 0
    for name in JSON_SPLIT:
        paths, rows = read_published_split(out / name)
        for path, row in zip(paths, rows):
            np.testing.assert_array_equal(matrix[row], by_study[Path(path).parent.name[1:]])
            n += 1
    assert n == 30
    manifest = json.loads((out / "prep_manifest.json").read_text())
    assert manifest["source"]["kind"] == "radgraph" and manifest["skipped"]["studies_without_radgraph"] == 10


def test_clear_errors(own_root: Path, tmp_path: Path) -> None:
    runner = CliRunner()

    def run(root: Path, out: Path) -> tuple[int, str]:
        res = runner.invoke(app, ["prep", "mimic", "--root", str(root), "--out", str(out), "--workers", "1",
                                  "--chunk-size", "8"])
        return res.exit_code, res.output

    code, output = run(tmp_path / "nowhere", tmp_path / "o1")
    assert code == 2 and "no such folder" in output

    reports = sorted((own_root / "files").rglob("s*.txt"))
    reports[-1].unlink()
    code, output = run(own_root, tmp_path / "o2")
    assert code == 2 and "1 report(s) missing" in output and reports[-1].name in output
    assert not (tmp_path / "o2" / "train.json").exists()
    assert len(list((tmp_path / "o2" / ".partial").glob("chunk-*.npz"))) == 4  # finished chunks are kept

    (own_root / "mimic-cxr-2.0.0-split.csv.gz").unlink()
    code, output = run(own_root, tmp_path / "o3")
    assert code == 2 and "no official split table" in output
    assert not (tmp_path / "o3").exists()
