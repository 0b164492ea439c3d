"""Other methods' model code, usable without the harness (like :mod:`medslip`).

One subpackage per method: modules, losses, checkpoint I/O and prompt sets as data. Nothing here imports
the harness; a package here may import :mod:`medslip` and third-party libraries. The harness glue (model
adapters, training methods) lives in the harness's ``models`` and ``methods`` packages.

- :mod:`baselines.clip`: a CLIP/ConVIRT-style image-report model built with open_clip (timm ResNet or
  open_clip ViT image tower, Hugging Face text tower), its checkpoint format, report text and prompt-set
  scoring;
- :mod:`baselines.single_stream`: our single-stream ablation of MeDSLIP (the pathology stream only);
- :mod:`baselines.reference`: comparing a re-implementation with a fixture of the published code.
"""
