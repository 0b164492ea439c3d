"""The ``medslip-single-stream`` model adapter: :class:`cxrbench.models.medslip.MedslipAdapter` on a single-stream model.

Zero-shot classification, grounding (pathology cross-attention) and the encoder export work exactly
as for MeDSLIP, because :class:`~baselines.single_stream.model.SingleStreamMeDSLIP` keeps MeDSLIP's pathology-stream
interface (``logits_pathology``, ``attn_pathology``, ``res_features``, ``embed_queries``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from baselines.single_stream.checkpoint import load_single_stream_checkpoint
from cxrbench.models.medslip import MedslipAdapter
from medslip.checkpoint import read_checkpoint_meta


class SingleStreamAdapter(MedslipAdapter):
    """MeDSLIP's adapter logic for the single-stream ablation."""

    name = "medslip-single-stream"

    @classmethod
    def from_checkpoint(cls, path: str | Path, image_size: int | None = None,  # type: ignore[override]
                        description_file: str | Path | None = None,
                        text_encoder: str | None = None) -> "SingleStreamAdapter":
        """One of our SingleStreamMeDSLIP checkpoint folders (``description_file`` is not used)."""
        path = Path(path)
        meta = read_checkpoint_meta(path if path.is_dir() else path.parent)
        size = image_size or int(meta.get("extra", {}).get("config", {}).get("data", {}).get("image_size", 224))
        return cls(load_single_stream_checkpoint(path), path, size, text_encoder or meta.get("text_encoder"),
                   source="medslip-single-stream-checkpoint")

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "architecture": "medslip-single-stream (single-stream: pathology queries, existence loss)"}


__all__ = ["SingleStreamAdapter"]
