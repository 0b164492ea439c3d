"""The model zoo: published checkpoints (catalog.yaml), their CLI (``cxrbench zoo ...``) and fixture checks."""
