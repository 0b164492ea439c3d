"""Scale benchmark (issue 19): the harness's own cost on a full-size dataset, with model compute made negligible.

SynthCXR NIH CXR14 at its real size (112,120 images, small files) goes end to end through ``cxrbench run``'s code
path (:func:`cxrbench.run.run`) for ``nih-zs`` and ``nih-ft`` at 1 %, with a deliberately tiny model adapter
(a few thousand parameters at 64 px), once cold (a fresh cache: table, preflight of every header, image cache
built) and once warm (a second job over the same unchanged files). Each run is its own process, so its peak RSS
and its time to the first model call include the interpreter start and the imports, as a user sees them.

Reported per run: wall time and peak RSS per phase (table, splits, preflight, cache, inference or training,
metrics and bootstrap, record; :mod:`cxrbench.phases`), seconds from the process start to the first model call
("starts evaluating"), the process's peak RSS, and how many model calls (batches) were made.

This is a benchmark, not a test: it writes about 0.5 GB of images once (reused afterwards) and takes minutes.

    .venv/bin/python -m benchmarks.scale.run_scale                 # 112,120 images, both tasks, cold + warm
    .venv/bin/python -m benchmarks.scale.run_scale --n 5000        # a quick look at the same path
    .venv/bin/python -m benchmarks.scale.run_scale --json out.json # the numbers, machine-readable

The numbers and the projection against a GPU run are in docs/benchmarks.md ("Scale").
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

#: the images of NIH CXR14
FULL_SIZE = 112_120
PHASES = ("table", "splits", "preflight", "cache", "inference", "training", "metrics", "record")


# ---------------------------------------------------------------------------------------------------- the model
def tiny_adapter():
    """A model adapter whose compute is negligible: zero-shot scores from the image mean through a fixed random
    projection; an encoder of four 8-channel stride-2 convolutions for fine-tuning."""
    import torch
    from torch import nn

    from cxrbench.models.base import Encoder

    class Trunk(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.convs = nn.ModuleList(nn.Conv2d(3 if i == 0 else 8, 8, 3, stride=2, padding=1) for i in range(4))

        def forward(self, x):
            feats = []
            for conv in self.convs:
                x = torch.relu(conv(x))
                feats.append(x)
            return feats  # strides 2, 4, 8, 16

    class TinyAdapter:
        name = "scale-tiny"
        image_size = 64
        settings = frozenset({"zs", "ft"})

        def __init__(self) -> None:
            self.calls = 0
            self.first_call: float | None = None
            self.weight = torch.randn(64, generator=torch.Generator().manual_seed(0))

        def _called(self) -> None:
            self.calls += 1
            if self.first_call is None:
                self.first_call = time.time()

        def to(self, device):
            return self

        def zero_shot(self, images, classes):
            self._called()
            return torch.sigmoid(images.mean((1, 2, 3))[:, None] * self.weight[: len(classes)])

        def encoder(self):
            self._called()
            return Encoder(Trunk(), (8, 8, 8, 8), "tiny", "random",
                           layer4=lambda: nn.Conv2d(8, 16, 3, stride=2, padding=1))

        def describe(self):
            return {"name": self.name, "checkpoint": None, "checkpoint_sha256": None, "weights": "random",
                    "note": "scale benchmark: a deliberately tiny model"}

    return TinyAdapter()


# ---------------------------------------------------------------------------------------------------- one run
class RssSampler:
    """The process's peak resident memory, sampled every 10 ms from ``/proc/self/statm`` in a thread (the
    kernel's own high-water mark is reset by every phase, see :mod:`cxrbench.phases`)."""

    def __init__(self) -> None:
        import threading

        self.peak = 0
        self._page = os.sysconf("SC_PAGE_SIZE")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(0.01)

    def sample(self) -> None:
        with open("/proc/self/statm") as f:
            self.peak = max(self.peak, int(f.read().split()[1]) * self._page)

    def stop_mib(self) -> float:
        self._stop.set()
        self._thread.join()
        self.sample()
        return round(self.peak / 2**20, 1)


def child(task: str, root: Path, out: Path, frac: float, epochs: int, n_boot: int) -> dict:
    """One ``cxrbench run`` in this process; returns its measurements."""
    sampler = RssSampler()
    from cxrbench.models.base import ModelEntry
    from cxrbench.models.registry import MODELS
    from cxrbench.phases import recording
    from cxrbench.run import RunOptions, run

    adapter = tiny_adapter()
    MODELS[adapter.name] = ModelEntry(adapter.name, "scale benchmark", adapter.settings, lambda **_: adapter)
    options = RunOptions(data_root=root, out=out, overwrite=True, n_boot=n_boot, epochs=epochs, progress=False,
                         device="cpu")
    start = time.perf_counter()
    with recording() as log:
        paths = run(adapter.name, task, [frac], [0], options, adapter=adapter)
    wall = time.perf_counter() - start
    launched = float(os.environ["SCALE_LAUNCHED"])
    record = json.loads(paths[0].read_text())
    return {
        "task": task,
        "phases": log.entries,
        "totals": log.totals(),
        "run_wall_s": round(wall, 2),
        "process_wall_s": round(time.time() - launched, 2),
        "first_model_call_s": round(adapter.first_call - launched, 2) if adapter.first_call else None,
        "model_calls": adapter.calls,
        "peak_rss_mib": max(sampler.stop_mib(), *(e["peak_rss_mib"] for e in log.entries)),
        "n_eval": record.get("n_eval"),
        "summary": {k: v["value"] for k, v in record["summary"].items()},
        "subset_images": (record["data"].get("subset") or {}).get("n_images"),
        "epochs_run": len((record.get("selection") or {}).get("history") or []),
    }


def launch(task: str, root: Path, cache: Path, out: Path, args) -> dict:
    env = {**os.environ, "CXRBENCH_CACHE": str(cache), "SCALE_LAUNCHED": repr(time.time())}
    cmd = [sys.executable, "-m", "benchmarks.scale.run_scale", "--child", task, "--root", str(root), "--out-dir",
           str(out), "--frac", str(args.frac), "--epochs", str(args.epochs), "--n-boot", str(args.n_boot)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=Path(__file__).resolve().parents[2])
    if done.returncode != 0:
        sys.exit(f"scale benchmark: {task} failed (rc {done.returncode}):\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------------------------------- the dataset
def dataset(n: int, size: int, where: Path) -> tuple[Path, float | None]:
    """The synthetic NIH of ``n`` images at ``size`` px under ``where`` (generated once, then reused)."""
    from cxrbench.synth.corpus import MANIFEST_FILE, generate

    root = where / f"nih-cxr14-n{n}-s{size}"
    if (root / MANIFEST_FILE).is_file():
        return root, None
    where.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".nih-", dir=where))
    start = time.perf_counter()
    try:
        generate("nih-cxr14", tmp, n=n, size=size, seed=0, progress=True)
        os.replace(tmp, root)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return root, time.perf_counter() - start


def table(results: list[dict]) -> str:
    """The runs as a Markdown table: wall time / peak RSS (MiB) per phase, then the whole process."""
    from tabulate import tabulate

    rows = []
    for r in results:
        cells = [f"{r['task']} {r['mode']}"]
        for name in PHASES:
            t = r["totals"].get(name)
            cells.append(f"{t['wall_s']:.1f} s / {t['peak_rss_mib']:.0f}" if t else "-")
        rows.append(cells + [f"{r['process_wall_s']:.1f}", f"{r['first_model_call_s']:.1f}",
                             f"{r['peak_rss_mib']:.0f}"])
    return tabulate(rows, headers=["run", *PHASES, "total s", "first model call s", "peak RSS MiB"],
                    tablefmt="github", disable_numparse=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=FULL_SIZE, help="images of the synthetic NIH (default: 112,120)")
    parser.add_argument("--size", type=int, default=64, help="pixels per side of the written images (>= 64)")
    parser.add_argument("--data-dir", type=Path, default=Path.home() / ".cache" / "cxrbench-scale",
                        help="where the synthetic dataset is written once and reused")
    parser.add_argument("--tasks", nargs="+", default=["nih-zs", "nih-ft"])
    parser.add_argument("--frac", type=float, default=0.01, help="nih-ft label fraction (default 1 %%)")
    parser.add_argument("--epochs", type=int, default=10, help="nih-ft epochs (the cxrbench run default)")
    parser.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples (the protocol's 1000)")
    parser.add_argument("--json", type=Path, help="also write the measurements here")
    parser.add_argument("--child", metavar="TASK", help=argparse.SUPPRESS)
    parser.add_argument("--root", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out-dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.root, args.out_dir, args.frac, args.epochs, args.n_boot)))
        return
    root, generated = dataset(args.n, args.size, args.data_dir)
    print(f"dataset: {root}" + (f" (generated in {generated:.0f} s)" if generated else " (reused)"), flush=True)
    results = []
    with tempfile.TemporaryDirectory(prefix="cxrbench-scale-") as work:
        for task in args.tasks:
            cache = Path(work) / f"cache-{task}"  # cold: nothing remembered; warm: the same cache again
            for mode in ("cold", "warm"):
                r = launch(task, root, cache, Path(work) / "results", args)
                r["mode"] = mode
                results.append(r)
                print(f"{task} {mode}: {r['process_wall_s']:.1f} s, first model call after "
                      f"{r['first_model_call_s']:.1f} s, peak RSS {r['peak_rss_mib']:.0f} MiB, "
                      f"{r['model_calls']} model calls", flush=True)
    print()
    print(table(results))
    if args.json:
        args.json.write_text(json.dumps({"n": args.n, "size": args.size, "root": str(root), "results": results},
                                        indent=1) + "\n")


if __name__ == "__main__":
    main()
