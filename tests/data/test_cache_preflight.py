"""Preprocessing cache (memory-mapped, fingerprinted) and the image-header preflight."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cxrbench.data.cache import build_cache, decode_resized, open_cache
from cxrbench.data.preflight import PreflightError, preflight


def _images(folder: Path, n: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        path = folder / f"{i:03d}.png"
        Image.fromarray(rng.integers(0, 256, (48, 40), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


def test_cache_builds_once_and_notices_changes(tmp_path: Path) -> None:
    paths = _images(tmp_path / "img", 6)
    root = tmp_path / "cache"
    assert open_cache(paths, 16, "demo", cache_root=root) is None
    cache = build_cache(paths, 16, "demo", cache_root=root, workers=1, progress=False)
    assert len(cache) == 6 and cache.pixels.shape == (6, 16, 16) and cache.pixels.dtype == np.uint8
    for i, p in enumerate(paths):
        assert np.array_equal(cache[i], decode_resized(p, 16))
    assert abs(cache.image(2).max() - cache[2].max() / 255.0) < 1e-6
    again = build_cache(paths, 16, "demo", cache_root=root, workers=1, progress=False)
    assert again.directory == cache.directory
    assert open_cache(paths, 16, "demo", cache_root=root).directory == cache.directory

    Image.fromarray(np.full((48, 40), 255, np.uint8)).save(paths[3])  # change one file
    st = os.stat(paths[3])
    os.utime(paths[3], ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    changed = build_cache(paths, 16, "demo", cache_root=root, workers=1, progress=False)
    assert changed.directory != cache.directory
    assert (changed[3] == 255).all()
    assert np.array_equal(changed[0], cache[0])
    assert changed.index_of(str(paths[3])) == 3
    assert build_cache(paths, 8, "demo", cache_root=root, workers=1, progress=False).pixels.shape == (6, 8, 8)


def test_cache_parallel_matches_serial(tmp_path: Path) -> None:
    paths = _images(tmp_path / "img", 40)
    serial = build_cache(paths, 12, "a", cache_root=tmp_path / "c1", workers=1, progress=False)
    parallel = build_cache(paths, 12, "a", cache_root=tmp_path / "c2", workers=2, progress=False)
    assert np.array_equal(np.asarray(serial.pixels), np.asarray(parallel.pixels))


def test_preflight_stops_on_bad_file_unless_skipping(tmp_path: Path) -> None:
    paths = _images(tmp_path / "img", 4)
    paths[1].write_bytes(b"corrupt")
    missing = tmp_path / "img" / "gone.png"
    with pytest.raises(PreflightError) as info:
        preflight([*paths, missing], progress=False)
    assert info.value.path == str(paths[1])
    result = preflight([*paths, missing], skip_bad=True, progress=False)
    assert result.ok == [str(p) for p in paths if p != paths[1]]
    assert [p for p, _ in result.skipped] == [str(paths[1]), str(missing)]
    assert "not found" in result.to_record()[1]["reason"]


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _leftovers(root: Path) -> list[Path]:
    return sorted(root.rglob(".*.tmp")) if root.exists() else []


@pytest.mark.parametrize("workers", [1, 2])
def test_truncated_file_stops_the_build_and_leaves_no_temporary_folder(tmp_path: Path, workers: int) -> None:
    from cxrbench.data.cache import CacheDecodeError
    from cxrbench.data.images import read_header

    paths = _images(tmp_path / "img", 40)
    _truncate(paths[25])
    read_header(paths[25])  # the header still reads: only decoding finds it
    root = tmp_path / "cache"
    with pytest.raises(CacheDecodeError, match="025.png") as info:
        build_cache(paths, 16, "demo", cache_root=root, workers=workers, progress=False)
    assert info.value.path == str(paths[25])
    assert _leftovers(root) == [] and list(root.rglob("index.json")) == []


def test_skip_bad_leaves_out_undecodable_files(tmp_path: Path) -> None:
    paths = _images(tmp_path / "img", 8)
    _truncate(paths[2])
    root = tmp_path / "cache"
    cache = build_cache(paths, 16, "demo", cache_root=root, workers=1, progress=False, skip_bad=True)
    assert [p for p, _ in cache.skipped] == [str(paths[2])] and "cannot decode" in cache.skipped[0][1]
    good = [str(p) for p in paths if p != paths[2]]
    assert cache.paths == good and cache.pixels.shape == (7, 16, 16)
    for i, p in enumerate(good):
        assert np.array_equal(cache[i], decode_resized(p, 16))
    assert open_cache(good, 16, "demo", cache_root=root).directory == cache.directory  # the run opens it
    assert _leftovers(root) == []


def test_stale_build_of_a_killed_process_is_removed(tmp_path: Path) -> None:
    import subprocess

    paths = _images(tmp_path / "img", 4)
    root = tmp_path / "cache"
    parent = root / "images" / "demo" / "16"
    dead = subprocess.Popen(["true"])
    dead.wait()  # a pid that no longer runs
    stale = parent / f".abc.{dead.pid}.tmp"
    stale.mkdir(parents=True)
    (stale / "pixels.u8").write_bytes(b"\0" * 100)
    alive = parent / f".def.{os.getppid()}.tmp"  # a live process's build is left alone
    alive.mkdir()
    cache = build_cache(paths, 16, "demo", cache_root=root, workers=1, progress=False)
    assert not stale.exists() and alive.exists() and len(cache) == 4


def test_preflight_with_cache_size_decodes_and_skips(tmp_path: Path) -> None:
    paths = _images(tmp_path / "img", 6)
    _truncate(paths[4])
    (paths[1]).unlink()
    root = tmp_path / "cache"
    with pytest.raises(PreflightError, match="001.png"):  # the missing file first (header pass)
        preflight(paths, cache_size=16, dataset="demo", cache_root=root, progress=False)
    with pytest.raises(PreflightError, match="004.png"):
        preflight([p for p in paths if p != paths[1]], cache_size=16, dataset="demo", cache_root=root,
                  progress=False)
    result = preflight(paths, skip_bad=True, cache_size=16, dataset="demo", cache_root=root, progress=False)
    assert [p for p, _ in result.skipped] == [str(paths[1]), str(paths[4])]
    assert result.ok == [str(p) for p in paths if p not in (paths[1], paths[4])]
    assert open_cache(result.ok, 16, "demo", cache_root=root) is not None and _leftovers(root) == []
    assert preflight(paths, skip_bad=True, decode=True, progress=False).skipped == result.skipped
