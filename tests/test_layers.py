"""The layers: cxrbench (harness) -> baselines (other methods' model code) -> medslip (model library).

``make test`` runs import-linter with the contracts of pyproject.toml; these tests check that the contracts
hold, that they can fail, and what import-linter cannot see (text mentions, what a fresh interpreter loads).
"""

from __future__ import annotations

import pkgutil
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import baselines

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which("lint-imports")


def _lint(root: Path) -> subprocess.CompletedProcess:
    assert LINT_IMPORTS, "lint-imports (import-linter) is not installed: pip install -e '.[test]'"
    env = {"PATH": str(Path(sys.executable).parent), "PYTHONPATH": str(root), "HOME": str(root)}
    return subprocess.run([LINT_IMPORTS, "--config", str(root / "pyproject.toml"), "--no-cache"], cwd=root, env=env,
                          capture_output=True, text=True, timeout=300)


def test_import_linter_contracts_hold():
    result = _lint(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize("violation", [
    ("baselines/clip/data.py", "from cxrbench.models.base import ClassSpec  # deliberate violation\n"),
    ("medslip/vocab.py", "import baselines.clip.prompts  # deliberate violation\n"),
    ("cxrbench/methods/clip.py", "from cxrbench.models import clip as _clip  # deliberate violation\n"),
])
def test_import_linter_fails_on_a_deliberate_violation(tmp_path, violation):
    """A copy of the tree with one upward import breaks a contract (so the check in `make test` can fail)."""
    for package in ("cxrbench", "baselines", "medslip"):
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    file, line = violation
    target = tmp_path / file
    target.write_text(target.read_text(encoding="utf-8") + "\n" + line, encoding="utf-8")
    result = _lint(tmp_path)
    assert result.returncode != 0, result.stdout
    assert "BROKEN" in result.stdout and file.removesuffix(".py").replace("/", ".") in result.stdout


def test_no_file_under_baselines_mentions_the_harness():
    offenders = [str(p.relative_to(ROOT)) for p in (ROOT / "baselines").rglob("*")
                 if p.is_file() and p.suffix != ".pyc" and "cxrbench" in p.read_text(encoding="utf-8", errors="ignore")]
    assert offenders == []


BASELINE_PACKAGES = sorted(m.name for m in pkgutil.iter_modules(baselines.__path__) if m.ispkg)


def test_there_are_baseline_packages():
    assert {"clip", "single_stream"} <= set(BASELINE_PACKAGES)


@pytest.mark.parametrize("package", BASELINE_PACKAGES)
def test_each_baseline_imports_without_the_harness(package):
    """Importing every module of ``baselines.<package>`` in a fresh interpreter loads no cxrbench module."""
    code = (
        "import importlib, pkgutil, sys\n"
        f"pkg = importlib.import_module('baselines.{package}')\n"
        "for m in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + '.'):\n"
        "    importlib.import_module(m.name)\n"
        "loaded = sorted(k for k in sys.modules if k == 'cxrbench' or k.startswith('cxrbench.'))\n"
        "print('LOADED', loaded)\n"
        "sys.exit(1 if loaded else 0)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300,
                            env={"PYTHONPATH": str(ROOT), "PATH": str(Path(sys.executable).parent),
                                 "HF_HUB_OFFLINE": "1"})
    assert result.returncode == 0, result.stdout + result.stderr
