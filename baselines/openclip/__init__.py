"""The generic open_clip adapter (any architecture + local pretrained weights)."""
