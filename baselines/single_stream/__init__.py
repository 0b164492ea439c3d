"""single-stream ablation of MeDSLIP (pathology stream only)."""

from baselines.single_stream.model import SingleStreamMeDSLIP, single_stream_config

__all__ = ["SingleStreamMeDSLIP", "single_stream_config"]
