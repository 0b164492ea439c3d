"""The published MedKLIP (MediaBrain-SJTU/MedKLIP): one stream of entity queries over image patches.

- :mod:`baselines.medklip.model`: the module with the released parameter names, its zero-shot rule and
  its grounding maps;
- :mod:`baselines.medklip.checkpoint`: the released ``checkpoint_final.pth`` (strict, ``weights_only``);
- :mod:`baselines.medklip.book`: the query book from an entity description file, cached;
- :mod:`baselines.medklip.reference`: reproduction of the fixture made with the published code.
"""
