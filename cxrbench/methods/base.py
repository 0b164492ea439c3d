"""What a pre-training method provides to ``cxrbench train``."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol


class Method(Protocol):
    name: str
    description: str

    def train(self, config: dict[str, Any], run_dir: Path, *, data_root=None, resume: bool = False,
              device: str | None = None, progress: bool = True) -> Path:
        """Train from ``config`` into ``run_dir``; return the final checkpoint folder."""
        ...
