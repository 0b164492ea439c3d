"""The published GLoRIA (marshuang80/gloria @ 416466a): global and word-to-region local image-text alignment.

- :mod:`baselines.gloria.model`: image and text towers with the released parameter names, word-piece
  aggregation, the published text processing;
- :mod:`baselines.gloria.similarity`: attention, global / local similarities, the zero-shot rule (published and
  per-image), word-to-region maps, the pre-training losses;
- :mod:`baselines.gloria.checkpoint`: the released Lightning ``.ckpt`` (no code from the file runs);
- :mod:`baselines.gloria.reference`: reproduction of the fixture made with the published code.
"""
