"""``cxrbench train medslip-single-stream``: MeDSLIP's training method with the single-stream model.

Everything but the model is :class:`cxrbench.methods.medslip.MedslipMethod`'s (data, books, loop,
checkpoint format); only :meth:`build_model` differs: it returns
:class:`baselines.single_stream.model.SingleStreamMeDSLIP` built from the same configuration and books.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cxrbench.methods.medslip import MedslipMethod


@dataclass(frozen=True)
class SingleStreamMethod(MedslipMethod):
    """Same data, books, loop and checkpoint format as ``medslip``; the model has the pathology stream only."""

    name: str = "medslip-single-stream"
    description: str = ("our single-stream ablation of MeDSLIP: pathology queries + existence loss "
                        "(no anatomy stream, no ProtoCL, no interaction loss)")

    def build_model(self, config: dict[str, Any], encoder):
        from baselines.single_stream.model import SingleStreamMeDSLIP

        model, p_texts, a_texts = super().build_model(config, encoder)
        return SingleStreamMeDSLIP(model.config, model.pathology_book, model.anatomy_book), p_texts, a_texts


SINGLE_STREAM = SingleStreamMethod()

__all__ = ["SINGLE_STREAM", "SingleStreamMethod"]
