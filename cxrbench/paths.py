"""Where cxrbench keeps generated data, caches and default checkpoints."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """Per-user cache root: ``$CXRBENCH_CACHE``, else ``$XDG_CACHE_HOME/cxrbench``, else ``~/.cache/cxrbench``."""
    env = os.environ.get("CXRBENCH_CACHE")
    if env:
        root = Path(env)
    else:
        root = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "cxrbench"
    root.mkdir(parents=True, exist_ok=True)
    return root
