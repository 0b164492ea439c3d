"""The ``medslip-single-stream`` model adapter: :class:`cxrbench.models.medslip.MedslipAdapter` on a single-stream model.

Zero-shot classification, grounding (pathology cross-attention) and the encoder export work exactly
as for MeDSLIP, because :class:`~baselines.single_stream.model.SingleStreamMeDSLIP` keeps MeDSLIP's pathology-stream
interface (``logits_pathology``, ``attn_pathology``, ``res_features``, ``embed_queries``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from baselines.single_stream.checkpoint import load_single_stream_checkpoint
from cxrbench.models.base import ModelEntry
from cxrbench.models.medslip import MedslipAdapter
from medslip.checkpoint import read_checkpoint_meta


class SingleStreamAdapter(MedslipAdapter):
    """MeDSLIP's adapter logic for the single-stream ablation."""

    name = "medslip-single-stream"
    #: MeDSLIP's rule on the one pathology stream; no anatomy stream, so no anatomy product
    published_grounding = {"published": MedslipAdapter.published_grounding["published"]}

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


def load(checkpoint: Path | None = None, text_encoder: str | None = None, image_size: int | None = None,
         progress: bool = True, **_: Any) -> SingleStreamAdapter:
    """The adapter of ``checkpoint``, or of the demo checkpoint (trained first when absent)."""
    from cxrbench.train import demo_or_train

    path = checkpoint or demo_or_train("medslip-single-stream", "medslip.json", progress=progress)
    return SingleStreamAdapter.from_checkpoint(path, image_size=image_size, text_encoder=text_encoder)


ENTRY = ModelEntry("medslip-single-stream", "our single-stream ablation of MeDSLIP (pathology queries + existence "
                   "loss only), trained by `cxrbench train medslip-single-stream`; not the published MedKLIP",
                   frozenset({"zs", "ground", "ft", "seg"}), load)

__all__ = ["ENTRY", "SingleStreamAdapter", "load"]
