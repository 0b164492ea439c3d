"""``cxrbench train medslip-single-stream``: MeDSLIP's training method with the single-stream model.

Everything but the model is :class:`cxrbench.methods.medslip.MedslipMethod`'s (data, books, loop,
checkpoint format); the subclass that swaps the model is made when training starts, so importing this
module never imports :mod:`cxrbench.methods` (whose import registers this very module).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@functools.cache
def _single_stream_method_class() -> type:
    from cxrbench.methods.medslip import MedslipMethod

    @dataclass(frozen=True)
    class SingleStreamMethod(MedslipMethod):
        def build_model(self, config: dict[str, Any], encoder):
            from baselines.single_stream.model import SingleStreamMeDSLIP

            model, p_texts, a_texts = super().build_model(config, encoder)
            return SingleStreamMeDSLIP(model.config, model.pathology_book, model.anatomy_book), p_texts, a_texts

    return SingleStreamMethod


@dataclass(frozen=True)
class SingleStreamMethodEntry:
    """Same data, books, loop and checkpoint format as ``medslip``; the model is :class:`SingleStreamMeDSLIP`."""

    name: str = "medslip-single-stream"
    description: str = ("single-stream ablation: pathology queries + existence loss "
                        "(no anatomy stream, no ProtoCL, no interaction loss)")

    def train(self, config: dict[str, Any], run_dir: Path, *, data_root=None, resume: bool = False,
              device: str | None = None, progress: bool = True) -> Path:
        method = _single_stream_method_class()(name=self.name, description=self.description)
        return method.train(config, run_dir, data_root=data_root, resume=resume, device=device, progress=progress)


SINGLE_STREAM = SingleStreamMethodEntry()

__all__ = ["SINGLE_STREAM", "SingleStreamMethodEntry"]
