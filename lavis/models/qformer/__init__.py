"""The BLIP-2 Q-former: its build on transformers' modules (`blip2_qformer.py`), and its shape from
BERT's `config.json` and its key names in BLIP-2's checkpoints (`blip2_weights.py`)."""
