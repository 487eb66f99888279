"""The vision encoder: an EVA-style ViT (`eva_vit.py`) and the loading of LAVIS's `eva_vit_g.pth` into it
(`eva_vit_weights.py`)."""
