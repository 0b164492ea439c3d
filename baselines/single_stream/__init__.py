"""Our single-stream ablation of MeDSLIP (the pathology stream only; not the published MedKLIP).

Modules: :mod:`~baselines.single_stream.model` (the model), :mod:`~baselines.single_stream.checkpoint`.
"""
