"""Permission to download model weights: one switch that every loader reads.

cxrbench reaches the network only when the user allows it, with ``--allow-download`` on the command
line (``cxrbench run|sweep|train --allow-download``, or ``cxrbench --allow-download COMMAND``) or with
``CXRBENCH_ALLOW_DOWNLOAD=1`` in the environment. The flag sets that environment variable for the
process, so the processes it starts see the same permission (under ``torchrun`` every rank parses the
flag itself).

Loaders never read the environment themselves: they call :func:`downloads_allowed`, and without
permission run their Hugging Face calls with the hub in offline mode (:func:`medslip.hub.hub_offline`).
Text encoders, open_clip weights and torchvision ImageNet weights then come from local files and caches
only.
"""

from __future__ import annotations

import os

ALLOW_DOWNLOAD_ENV = "CXRBENCH_ALLOW_DOWNLOAD"
_TRUE = ("1", "true", "yes", "on")

HOW_TO_ALLOW = f"pass --allow-download (or set {ALLOW_DOWNLOAD_ENV}=1)"


def downloads_allowed(allow_download: bool | None = None) -> bool:
    """Whether a loader may download: ``allow_download`` when given (a Python caller's explicit choice),
    else the process-wide permission (``--allow-download`` / ``CXRBENCH_ALLOW_DOWNLOAD=1``)."""
    if allow_download is not None:
        return bool(allow_download)
    return os.environ.get(ALLOW_DOWNLOAD_ENV, "").strip().lower() in _TRUE


def allow_downloads() -> None:
    """Grant this process (and the processes it starts) permission to download; what ``--allow-download`` does."""
    os.environ[ALLOW_DOWNLOAD_ENV] = "1"


__all__ = ["ALLOW_DOWNLOAD_ENV", "HOW_TO_ALLOW", "allow_downloads", "downloads_allowed"]
