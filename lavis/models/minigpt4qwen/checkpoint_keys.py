"""Checkpoints of the original MiniGPT4Qwen (Coobiw/MiniGPT4Qwen) -> this model's key names.

What the original writes:

* its runner (`RunnerBase._save_checkpoint`): ``{"model": state, "optimizer", "config", "scaler",
  "epoch"}`` where `state` is the model's `state_dict()` minus frozen parameters, so with the
  released recipe (everything frozen but `llm_proj`): ``llm_proj.{weight,bias}`` plus the
  persistent buffer ``Qformer.bert.embeddings.position_ids``. The released `ckpt.zip` holds such
  a `checkpoint_*.pth`, which `cli_demo.py` / `test_model_chat.py` load with `load_checkpoint`;
* its DeepSpeed converters (`deepspeed2pth.py`, `pipemodel2pth.py`): bare state dicts, e.g.
  ``llm_proj.*`` + ``llm_model.transformer.*`` + ``llm_model.lm_head.weight`` when the LLM was tuned.

The original attribute names are LAVIS's and Qwen-1's: ``visual_encoder.*`` (EVA keys),
``ln_vision``, ``Qformer.bert.*``, ``query_tokens``, ``llm_proj``, ``llm_model.transformer.*``.
:func:`convert_checkpoint_keys` renames them to ours (see `loaders.vit`, `loaders.blip2`,
`loaders.qwen` for the tables); our own names pass through unchanged. Buffers the original
saved that are not weights (``position_ids``, Qwen's rotary/mask buffers) are dropped and listed
at INFO. As in the original, ``query_tokens`` of another count than `num_query_token` are not loaded.

Not converted: LoRA weights. The original's LoRA targets `q_proj`/`v_proj`, modules Qwen-1 does not
have (it has `c_attn`), so the original cannot produce LoRA checkpoints for Qwen-7B-Chat.
"""

import logging

from lavis.models.loaders.blip2 import convert_original_state, drop_mismatched_query_tokens
from lavis.models.loaders.files import describe_keys

log = logging.getLogger(__name__)


def convert_checkpoint_keys(model, state, source="checkpoint"):
    """`state` with original key names -> our names (for `BaseModel.load_checkpoint`)."""
    converted, ignored = convert_original_state(state, len(model.visual_encoder.encoder.layers))
    if ignored:
        log.info("%s: %d entries that are not weights of this model ignored: %s", source, len(ignored), describe_keys(ignored, 20))
    return drop_mismatched_query_tokens(model, converted, source)
