"""BioViL and BioViL-T (Boecking et al. 2022; Bannur et al. 2023), as published in microsoft/hi-ml
(``health_multimodal``, commit b67c1d2 = PyPI ``hi-ml-multimodal==0.2.2``), re-implemented without it.

- :mod:`baselines.biovil.image`: ResNet trunk + 1x1-conv projector (BioViL), the multi-image encoder with its
  ViT pooler (BioViL-T), the inference transform (no mean / std), the grounding maps;
- :mod:`baselines.biovil.text`: CXR-BERT with its projection head in the released key layout, the tokenizer;
- :mod:`baselines.biovil.model`: both towers with the published zero-shot rule and grounding, and the loader of
  the downloaded files (:func:`~baselines.biovil.model.load_biovil`; weights-only reading and the strict load of
  :mod:`baselines.state_dict`);
- :mod:`baselines.biovil.reference`: reproduction of the published code's fixtures.

Importing this package imports nothing heavy.
"""
