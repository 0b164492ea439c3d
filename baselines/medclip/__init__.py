"""MedCLIP (Wang et al., EMNLP 2022; ``RyanWangZf/MedCLIP``): the published model, preprocessing, prompts and
zero-shot rule, and a strict loader of the released checkpoints.

- :mod:`baselines.medclip.model`: ``MedClipModel`` with the published module names (ResNet-50 or Swin-T image
  tower, Bio_ClinicalBERT text tower with its layer {1, 2, last} mean pooling over all positions);
- :mod:`baselines.medclip.checkpoint`: reading ``pytorch_model.bin`` (``weights_only=True``), the Swin renames
  between transformers 4 and 5, strict loading with a grouped mismatch report;
- :mod:`baselines.medclip.prompts` / :mod:`baselines.medclip.zeroshot`: the CheXpert prompt set, its random
  sampling, ``PromptClassifier`` (mean or max over prompts) and deterministic variants;
- :mod:`baselines.medclip.preprocess`: the processor and zero-shot dataset transforms;
- :mod:`baselines.medclip.reference`: reproduction of the fixtures made with the published code.

Importing this package imports nothing heavy.
"""
