"""Evaluation tasks: one module per setting (zs, ground, ft, seg) and the task registry (specs)."""
