"""CLIP/ConVIRT-style baseline built from open_clip parts (timm ResNet image tower, HF text tower)."""

from baselines.clip.model import ClipConfig, ClipModel

__all__ = ["ClipConfig", "ClipModel"]
