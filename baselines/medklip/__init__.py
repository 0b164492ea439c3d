"""MeDKLIP-style single-stream ablation of MeDSLIP (pathology stream only)."""

from baselines.medklip.model import MeDKLIP, single_stream_config

__all__ = ["MeDKLIP", "single_stream_config"]
