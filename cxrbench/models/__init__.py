"""Model adapters behind one contract (see :mod:`cxrbench.models.base`)."""
