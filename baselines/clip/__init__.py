"""CLIP/ConVIRT-style baseline built from open_clip parts (timm ResNet or open_clip ViT image tower, HF text tower).

Modules: :mod:`~baselines.clip.model` (the model, tokenisation), :mod:`~baselines.clip.checkpoint` (its folder
format), :mod:`~baselines.clip.data` (image-report pairs), :mod:`~baselines.clip.prompts` (prompt-set scoring).
Nothing is imported eagerly, so the light modules load without open_clip.
"""
