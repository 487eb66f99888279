"""The original's whole-model checkpoints -> this model: BLIP-2's pretrained file
(:func:`load_blip2_pretrained`) and MiniGPT4Qwen's own (:func:`convert_checkpoint_keys`).

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
:func:`convert_checkpoint_keys` renames them to ours (see `vision.eva_vit_weights`,
`qformer.blip2_weights`, `llm.qwen_weights` for the tables); our own names pass through unchanged. Buffers the original
saved that are not weights (``position_ids``, Qwen's rotary/mask buffers) are dropped and listed
at INFO. As in the original, ``query_tokens`` of another count than `num_query_token` are not loaded.

Not converted: LoRA weights. The original's LoRA targets `q_proj`/`v_proj`, modules Qwen-1 does not
have (it has `c_attn`), so the original cannot produce LoRA checkpoints for Qwen-7B-Chat.
"""

import logging

import torch

from lavis.models.llm.qwen_weights import convert_qwen1_key, qwen1_ignorable
from lavis.models.qformer.blip2_weights import convert_qformer_key, lavis_qformer_names
from lavis.models.vision.eva_vit_weights import convert_lavis_vit_state
from lavis.models.weight_files import WeightFileError, describe_keys, load_state_file, unwrap_model_state

log = logging.getLogger(__name__)


def convert_checkpoint_keys(model, state, source="checkpoint"):
    """`state` with original key names -> our names (for `BaseModel.load_checkpoint`)."""
    converted, ignored = convert_original_state(state, len(model.visual_encoder.encoder.layers))
    if ignored:
        log.info(
            "%s: %d entries that are not weights of this model ignored: %s",
            source,
            len(ignored),
            describe_keys(ignored, 20),
        )
    return drop_mismatched_query_tokens(model, converted, source)


def convert_original_state(state, vit_depth=None):
    """Original MiniGPT4Qwen / LAVIS key names -> ours, for a whole state dict.

    Returns (converted, ignored): `ignored` are keys the original model has no parameter
    for (text-side Q-former, Qwen's non-persistent buffers...). Keys already in our naming
    pass through, so our own checkpoints convert to themselves.
    """
    out, ignored = {}, []
    vit = {}
    for key, value in state.items():
        if key.startswith("visual_encoder."):
            rest = key[len("visual_encoder.") :]
            if rest.startswith(("embeddings.", "encoder.")):  # already ours
                out[key] = value
            else:
                vit[rest] = value
        elif key.startswith("Qformer."):
            new = convert_qformer_key(key)
            if new is None:
                ignored.append(key)
            else:
                out[new] = value
        elif key.startswith("llm_model.transformer."):
            inner = key[len("llm_model.") :]
            if qwen1_ignorable(inner):
                ignored.append(key)
                continue
            converted = convert_qwen1_key(inner, value)
            if converted is None:
                out[key] = value  # unknown: reported by the caller as not fitting the model
            else:
                for new, tensor in converted:
                    out["llm_model." + new] = tensor
        else:
            out[key] = value
    if vit:
        converted, vit_ignored, missing = convert_lavis_vit_state(vit, vit_depth, require_all=False)
        if missing:
            raise WeightFileError(f"visual_encoder: q_bias and v_bias come in pairs; missing {describe_keys(missing)}")
        out.update({"visual_encoder." + k: v for k, v in converted.items()})
        ignored += ["visual_encoder." + k for k in vit_ignored]
    return out, ignored


def drop_mismatched_query_tokens(model, state, source):
    """The original's rule: `query_tokens` of another count are not loaded (the model keeps its own)."""
    tokens = state.get("query_tokens")
    if isinstance(tokens, torch.Tensor) and tokens.dim() == 3 and tokens.shape[1] != model.query_tokens.shape[1]:
        log.warning(
            "%s has %d query tokens but model.num_query_token is %d: its query_tokens are not loaded "
            "(the model keeps its own), as the original MiniGPT4Qwen does",
            source,
            tokens.shape[1],
            model.query_tokens.shape[1],
        )
        state = {k: v for k, v in state.items() if k != "query_tokens"}
    return state


def load_blip2_pretrained(model, path):
    """Load the BLIP-2 checkpoint at `path` (`{"model": {...}}`) into `model` (a MiniGPT4Qwen).

    Loads the Q-former, `query_tokens` and `ln_vision` (all required), plus any other key of
    the model that the file holds (as the original's non-strict load does). Returns the
    loaded keys (our names).
    """
    state = unwrap_model_state(load_state_file(path), path)
    converted, ignored = convert_original_state(state, len(model.visual_encoder.encoder.layers))
    converted = drop_mismatched_query_tokens(model, converted, path)
    own = model.state_dict()
    required = [k for k in own if k.startswith(("Qformer.", "ln_vision.")) or k == "query_tokens"]
    if "query_tokens" not in converted and "query_tokens" in state:
        required.remove("query_tokens")  # dropped above, with a warning
    missing = [k for k in required if k not in converted]
    if missing:
        raise WeightFileError(
            f"{path} lacks {len(missing)} Q-former key(s) this model needs: "
            f"{describe_keys(lavis_qformer_names(missing))} "
            "(is it a BLIP-2 checkpoint? does model.qformer_config match it?)"
        )
    unknown = [k for k in converted if k not in own]
    ignored += unknown
    if ignored:
        log.info(
            "%s: %d keys not used by MiniGPT4Qwen, ignored as the original ignores them: %s",
            path,
            len(ignored),
            describe_keys(ignored, 40),
        )
    mismatched = [
        f"{lavis_qformer_names([k])[0]}: file {tuple(v.shape)} vs model {tuple(own[k].shape)}"
        for k, v in converted.items()
        if k in own and tuple(v.shape) != tuple(own[k].shape)
    ]
    if mismatched:
        raise WeightFileError(
            f"{path} does not fit this model (model.qformer_config, num_query_token, ViT width): "
            f"shape mismatches {describe_keys(mismatched, 12)}"
        )
    loaded = [k for k in converted if k in own]
    with torch.no_grad():
        for key in loaded:
            own[key].copy_(converted[key].to(own[key].dtype))
    log.info("loaded %d tensors from %s", len(loaded), path)
    return sorted(loaded)
