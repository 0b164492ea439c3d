"""medslip: a faithful, vectorized implementation of MeDSLIP.

Usable on its own: it never imports :mod:`cxrbench`.
"""

from medslip.config import MeDSLIPConfig
from medslip.model import MeDSLIP
from medslip.vocab import ANATOMIES, OBSERVATIONS

__all__ = ["ANATOMIES", "OBSERVATIONS", "MeDSLIP", "MeDSLIPConfig"]
__version__ = "0.1.0"
