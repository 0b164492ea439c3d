"""CheXzero (Tiu et al., Nat Biomed Eng 2022): OpenAI CLIP ViT-B/32 fine-tuned on MIMIC-CXR, read by open_clip.

- :mod:`.model`: the OpenAI CLIP layout (also PubMedCLIP's): configuration inferred from a state dict's shapes as
  the published ``build_model`` does, open_clip ``CLIP(quick_gelu=True)``, fp16 tensors cast to fp32 on load;
- :mod:`.zero_shot`: the published preprocessing and rules (pair softmax over "{}" / "no {}", z-score sigmoid) and the
  checkpoint ensemble (mean of probabilities);
- :mod:`.reference`: reproduces a fixture of the published code.
"""
