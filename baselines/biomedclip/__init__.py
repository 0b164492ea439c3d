"""BiomedCLIP (Zhang et al. 2023): an open_clip model (timm ViT-B/16 + PubMedBERT), built offline.

:mod:`.model` builds it from its ``open_clip_config.json`` with the BERT configuration given locally (the released
values, or a local folder), so open_clip's ``AutoConfig.from_pretrained(<hub id>)`` never runs, and loads the
released ``open_clip_pytorch_model.bin`` strictly.
"""
