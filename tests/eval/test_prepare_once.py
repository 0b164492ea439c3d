"""Issue 19: a task's data is prepared once per (task, data root, split seed), not once per seed or fraction;
a later job over unchanged files reads no image header, and a changed file is checked again."""

from __future__ import annotations

import json
import os

import pytest

from cxrbench.run import RunOptions, run


@pytest.fixture()
def header_reads(monkeypatch, tmp_path):
    """Counts the preflight's header reads, in a cache of this test's own."""
    import cxrbench.data.preflight as preflight

    monkeypatch.setenv("CXRBENCH_CACHE", str(tmp_path / "cache"))
    seen: list[str] = []
    real = preflight.read_header

    def counting(path):
        seen.append(str(path))
        return real(path)

    monkeypatch.setattr(preflight, "read_header", counting)
    return seen


def _options(tmp_path, root, checkpoint, **extra) -> RunOptions:
    return RunOptions(data_root=root, checkpoint=checkpoint, out=tmp_path / "results", n_boot=10, epochs=1,
                      progress=False, **extra)


def test_seeds_fractions_and_later_jobs_read_each_header_once(tmp_path, small_roots, tiny_checkpoint, header_reads):
    root = small_roots["rsna-pneumonia"]
    n_images = sum(1 for _ in (root / "stage_2_train_images").iterdir())
    paths = run("medslip", "rsna-ft", [0.1], [0, 1], _options(tmp_path, root, tiny_checkpoint))
    assert len(paths) == 2
    assert len(header_reads) == n_images  # v1 read them twice here (once per record)
    # every record still has its own split files, the same ones (one split seed)
    splits = [json.loads(p.read_text())["data"]["splits"] for p in paths]
    assert len({s["test"]["path"] for s in splits}) == 2 and len({s["test"]["sha256"] for s in splits}) == 1
    # each record says what its phases took; only the first one loaded the table, preflight and cache
    phases = [[t["phase"] for t in json.loads(p.read_text())["timings"]] for p in paths]
    assert {"table", "preflight", "cache", "splits", "training", "inference", "metrics"} <= set(phases[0])
    assert set(phases[1]) == {"splits", "training", "inference", "metrics"}

    run("medslip", "rsna-zs", [None], [0], _options(tmp_path, root, tiny_checkpoint))  # another job, same files
    assert len(header_reads) == n_images

    changed = sorted((root / "stage_2_train_images").iterdir())[0]
    stat = changed.stat()
    os.utime(changed, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    run("medslip", "rsna-zs", [None], [0], _options(tmp_path, root, tiny_checkpoint, overwrite=True))
    assert len(header_reads) == 2 * n_images  # the fingerprint changed: checked again


def test_a_remembered_bad_file_still_stops_a_run_that_does_not_skip(tmp_path, small_roots, header_reads):
    from cxrbench.data.preflight import PreflightError, preflight

    images = sorted((small_roots["nih-cxr14"] / "images_001").rglob("*.png"))[:6]
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    paths = [str(p) for p in images] + [str(bad)]
    first = preflight(paths, skip_bad=True, progress=False, cache_size=32, dataset="nih-cxr14")
    assert [p for p, _ in first.skipped] == [str(bad)] and len(header_reads) == 7
    again = preflight(paths, skip_bad=True, progress=False, cache_size=32, dataset="nih-cxr14")
    assert again.ok == first.ok and again.skipped == first.skipped and len(header_reads) == 7
    with pytest.raises(PreflightError, match="bad.png"):
        preflight(paths, skip_bad=False, progress=False, cache_size=32, dataset="nih-cxr14")
