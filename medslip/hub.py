"""Offline mode for the Hugging Face hub, switched on around loading calls that must not reach the network.

``local_files_only=True`` alone is not enough: ``huggingface_hub`` may still make requests of its own
(for example to build its request headers) before it looks in the local cache. Its offline mode
(``huggingface_hub.constants.HF_HUB_OFFLINE``, read at call time by the hub client and by transformers)
stops every such request.
"""

from __future__ import annotations

import contextlib
import os
from typing import Iterator


@contextlib.contextmanager
def hub_offline(enabled: bool = True) -> Iterator[None]:
    """Put the Hugging Face hub (and so transformers' and open_clip's hub calls) in offline mode.

    With ``enabled=False`` this does nothing (the caller has permission to download). The previous
    setting, and the ``HF_HUB_OFFLINE`` environment variable, are restored on exit.
    """
    if not enabled:
        yield
        return
    from huggingface_hub import constants

    before_const, before_env = constants.HF_HUB_OFFLINE, os.environ.get("HF_HUB_OFFLINE")
    constants.HF_HUB_OFFLINE = True
    os.environ["HF_HUB_OFFLINE"] = "1"
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = before_const
        if before_env is None:
            os.environ.pop("HF_HUB_OFFLINE", None)
        else:
            os.environ["HF_HUB_OFFLINE"] = before_env


__all__ = ["hub_offline"]
