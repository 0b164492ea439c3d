"""The dataset registry: name -> adapter, filled by explicit imports (``cxrbench data list`` prints it)."""

from __future__ import annotations

from cxrbench.data.base import DatasetAdapter
from cxrbench.data.covidx import COVIDxAdapter
from cxrbench.data.medslip_pretrain import MedslipPretrainAdapter
from cxrbench.data.mimic import MIMICAdapter
from cxrbench.data.nih import NIHAdapter
from cxrbench.data.rsna import RSNAAdapter
from cxrbench.data.siim import SIIMAdapter

__all__ = ["DATASETS", "get_dataset"]

DATASETS: dict[str, DatasetAdapter] = {
    "nih-cxr14": NIHAdapter(),
    "rsna-pneumonia": RSNAAdapter(),
    "siim-acr": SIIMAdapter(),
    "covidx-cxr4": COVIDxAdapter(),
    "mimic-cxr": MIMICAdapter(),
    "medslip-pretrain": MedslipPretrainAdapter(),
}


def get_dataset(name: str) -> DatasetAdapter:
    """The adapter registered as ``name``; a ``KeyError`` listing the known names otherwise."""
    try:
        return DATASETS[name]
    except KeyError:
        raise KeyError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}") from None
