"""Export a trained model for plain transformers: `python -m lavis.tools.export_hf`.

    python -m lavis.tools.export_hf --ckpt-path output/.../checkpoint_7.pth --output-dir exported \
        [--cfg-path CFG] [--dtype fp32|bf16|fp16] [--max-shard-size 5GB] [--options model.key=value ...]

The last step of the flow: the model a run trained (rebuilt as `lavis.run_builder` rebuilds it,
LoRA adapters folded in as `merge_lora` folds them) becomes a folder that transformers alone
loads as `Blip2ForConditionalGeneration.from_pretrained(folder)` with `AutoProcessor`:

* the weights (safetensors shards): our ViT (`Blip2VisionModel` already) as `vision_model`, with
  `ln_vision` as its `post_layernorm`; the Q-former as `qformer`; `query_tokens`; `llm_proj` as
  `language_projection`; the LLM as `language_model` (Qwen-7B-Chat in the Qwen2 form our loader
  converts it to, any other family as it is);
* `config.json`: `Blip2Config` with our `num_query_tokens` and `image_token_id` = our image slot
  token, whose slots BLIP-2 fills with the projected queries wherever they stand in `input_ids`;
  the LLM's `eos_token_id` is our stop ids (transformers' BLIP-2 `generate` runs the LLM with its
  own config, not `generation_config.json`);
* the tokenizer (Qwen-1's `qwen.tiktoken` converted by transformers' `TikTokenConverter`, NFC
  as Qwen's; any other tokenizer as it is) and a `Blip2Processor` (`BlipImageProcessorPil`: our
  eval processor's bicubic resize and normalisation; `num_query_tokens` null, because the chat
  template places the slots) whose chat template renders prompts as our prompt builders do;
* `generation_config.json` (greedy, stop ids, image slot and padding rows suppressed) and a
  README.md model card.

It is written into a temporary folder beside `--output-dir` and renamed at the end: an
interrupted export leaves no folder that looks complete.  Problems (missing checkpoint, a config
that does not fit, an output folder that is not empty) stop with one line.
"""

import json
import os
import shutil
import sys

import torch
from tokenizers import Tokenizer, normalizers
from transformers import (
    Blip2Config,
    Blip2ForConditionalGeneration,
    Blip2Processor,
    GenerationConfig,
    PreTrainedTokenizerFast,
)
from transformers.convert_slow_tokenizer import TikTokenConverter
from transformers.models.blip.image_processing_pil_blip import BlipImageProcessorPil

import lavis  # noqa: F401  (registers every component)
from lavis.chat.loading import default_settings
from lavis.common.config import load_preprocess_config
from lavis.common.dtypes import DTYPES, dtype_named
from lavis.common.errors import UserError
from lavis.common.utils import new_file_mode
from lavis.models import load_preprocess
from lavis.models.llm.qwen_tiktoken import ENDOFTEXT, PAT_STR, SPECIAL_TOKENS, QwenTokenizer, load_tiktoken_bpe
from lavis.processors.chat_format import ChatMLPromptBuilder
from lavis.run_builder import (
    build_trained_model,
    checkpoint_tool_main,
    checkpoint_tool_parser,
    read_trained_checkpoint,
    trained_config,
)
from lavis.tools.merge_lora import fold_adapters

IMAGE_OPEN, IMAGE_CLOSE = "<Img>", "</Img>"  # around each image's slots, as the training data and chat put them

# The chat templates' shared macro: a message's content (a string, or text and image parts) as our
# chat session writes it: each image as <Img>[slots]</Img>, a text right after an image after a space.
_CONTENT_MACRO = (
    "{%- macro mgq_content(message) -%}"
    "{%- if message['content'] is string -%}{{ message['content'] }}"
    "{%- else -%}{%- set mgq = namespace(image=false) -%}"
    "{%- for part in message['content'] -%}"
    "{%- if part['type'] == 'image' -%}{{ IMAGE }}{%- set mgq.image = true -%}"
    "{%- elif part['type'] == 'text' -%}{{ (' ' if mgq.image else '') + part['text'] }}{%- set mgq.image = false -%}"
    "{%- endif -%}{%- endfor -%}{%- endif -%}"
    "{%- endmacro -%}"
)


class ExportError(UserError, ValueError):
    """A problem with the inputs of the export, worded for the user."""


# -- the chat template ---------------------------------------------------------------------------------
def chat_template(model):
    """A Jinja chat template that renders conversations as the model's prompt builder does."""
    prompt = model.prompt
    slots = model.llm_tokenizer.decode([prompt.image_pad_id]) * model.num_query_token
    macro = _CONTENT_MACRO.replace("IMAGE", json.dumps(IMAGE_OPEN + slots + IMAGE_CLOSE))
    if isinstance(prompt, ChatMLPromptBuilder):  # the original's ChatML, written out (chat_format.py)
        return macro + (
            "{%- if messages and messages[0]['role'] == 'system' -%}"
            "{%- set mgq_system = mgq_content(messages[0]) -%}{%- set mgq_turns = messages[1:] -%}"
            "{%- else -%}"
            f"{{%- set mgq_system = {json.dumps(prompt.system)} -%}}{{%- set mgq_turns = messages -%}}"
            "{%- endif -%}"
            "{{- '<|im_start|>system\\n' + mgq_system + '<|im_end|>\\n' -}}"
            "{%- for message in mgq_turns -%}"
            "{{- '<|im_start|>' + message['role'] + '\\n' + mgq_content(message) + '<|im_end|>\\n' -}}"
            "{%- endfor -%}"
            "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}"
        )
    # the LLM's own template (chat_template.py renders it), on messages whose contents are strings
    return (
        macro
        + (
            "{%- set mgq_list = namespace(messages=[]) -%}"
            "{%- for message in messages -%}"
            "{%- set mgq_list.messages = mgq_list.messages"
            " + [{'role': message['role'], 'content': mgq_content(message)}] -%}"
            "{%- endfor -%}"
            "{%- set messages = mgq_list.messages -%}"
        )
        + prompt.tok.chat_template
    )


# -- the tokenizer -------------------------------------------------------------------------------------
class _QwenTiktokenConverter(TikTokenConverter):
    """transformers' tiktoken converter, reading the file with our checked reader (tiktoken's
    own reader writes a cached copy of the file under the temporary folder)."""

    load_tiktoken_bpe = staticmethod(load_tiktoken_bpe)


def hf_tokenizer(tokenizer, slot_id, template, max_length):
    """The model's tokenizer as a transformers fast tokenizer (`tokenizer.json`): the same pieces and
    ids, its image slot token (`slot_id`) named `image_token` (Blip2Processor's), the chat template
    `template`, `max_length` tokens at most (the LLM's positions)."""
    if isinstance(tokenizer, QwenTokenizer):  # no transformers class reads qwen.tiktoken without remote code
        converted = _QwenTiktokenConverter(tokenizer.vocab_file, PAT_STR, extra_special_tokens=SPECIAL_TOKENS)
        backend = converted.converted()
        backend.normalizer = normalizers.NFC()  # Qwen normalises text to NFC before the BPE
        named = {"eos_token": ENDOFTEXT, "pad_token": ENDOFTEXT}
    else:  # the tokenizer as loaded (with the slot token, if one was added), by its own pipeline
        backend = Tokenizer.from_str(tokenizer.hf.backend_tokenizer.to_str())
        named = {k: getattr(tokenizer.hf, k) for k in ("bos_token", "eos_token", "unk_token", "pad_token")}
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        model_max_length=max_length,
        chat_template=template,
        extra_special_tokens={"image_token": tokenizer.decode([slot_id])},
        **{k: v for k, v in named.items() if v is not None},
    )


# -- the model -----------------------------------------------------------------------------------------
def blip2_config(model, dtype):
    """`Blip2Config` of our parts; the LLM config stops at our stop ids."""
    text = model.llm_model.config.to_dict()
    text["eos_token_id"] = list(model.stop_ids)
    text["pad_token_id"] = model.llm_tokenizer.pad_token_id
    vision = model.visual_encoder.config.to_dict()  # layer_norm_eps: the ViT blocks' (ln_vision's may differ)
    return Blip2Config(
        vision_config=vision,
        qformer_config=model.Qformer.config.to_dict(),
        text_config=text,
        num_query_tokens=model.num_query_token,
        image_token_id=model.replace_image_token_id,
        dtype=dtype,
    )


def blip2_state_dict(model, dtype):
    """Our weights under transformers' BLIP-2 names, in `dtype` (the Q-former and queries in fp32,
    as transformers keeps them)."""
    parts = {
        "vision_model.": model.visual_encoder,
        "vision_model.post_layernorm.": model.ln_vision,
        "qformer.": model.Qformer,
        "language_projection.": model.llm_proj,
        "language_model.": model.llm_model,
    }
    state = {"query_tokens": model.query_tokens.detach().float()}
    for prefix, module in parts.items():
        keep = torch.float32 if prefix == "qformer." else dtype
        for key, value in module.state_dict().items():
            if prefix == "vision_model." and key.startswith("post_layernorm."):
                continue  # an Identity in our ViT: ln_vision takes its place
            state[prefix + key] = value.detach().to(keep)
    return state


def blip2_model(model, dtype):
    """`Blip2ForConditionalGeneration` holding our tensors (built on the meta device, then assigned:
    no second copy of the weights)."""
    config = blip2_config(model, dtype)
    with torch.device("meta"):
        hf = Blip2ForConditionalGeneration(config)
    state = blip2_state_dict(model, dtype)
    # tied embeddings come as both names of one tensor, as in our state dict; saving writes one
    missing, unexpected = hf.load_state_dict(state, strict=False, assign=True)
    if missing or unexpected:
        raise ExportError(f"the model does not map onto BLIP-2: missing {missing[:5]}, unexpected {unexpected[:5]}")
    return hf


def generation_config(model):
    """Our chat's defaults: greedy, its max_new_tokens, stopping at our stop ids, never the image slot
    nor the embedding's padding rows."""
    tok = model.llm_tokenizer
    config = model.llm_model.config
    return GenerationConfig(
        bos_token_id=config.bos_token_id,
        eos_token_id=list(model.stop_ids),
        pad_token_id=tok.pad_token_id,
        do_sample=False,
        max_new_tokens=default_settings(config.max_position_embeddings).max_new_tokens,
        suppress_tokens=[model.replace_image_token_id, *range(len(tok), config.vocab_size)],
    )


def processor(model):
    """Blip2Processor: our eval image processor's settings, the tokenizer, our chat template."""
    vis, _ = load_preprocess(load_preprocess_config(model.cfg))
    ours = vis["eval"]
    size = model.cfg.image_size
    images = BlipImageProcessorPil(
        size={"height": size, "width": size},
        image_mean=[float(x) for x in ours.mean],
        image_std=[float(x) for x in ours.std],
    )
    template = chat_template(model)
    positions = model.llm_model.config.max_position_embeddings
    tokenizer = hf_tokenizer(model.llm_tokenizer, model.replace_image_token_id, template, positions)
    return Blip2Processor(images, tokenizer, num_query_tokens=None, chat_template=template)


# -- the folder ----------------------------------------------------------------------------------------
MODEL_CARD = """\
---
library_name: transformers
pipeline_tag: image-text-to-text
---
# {name}

A MiniGPT4Qwen model (EVA-ViT -> BLIP-2 Q-former -> `llm_proj` -> {llm}) exported for plain
transformers by `python -m lavis.tools.export_hf` of the MiniGPT4Qwen project.

- source checkpoint: `{ckpt}` (model type `{model_type}`, epoch {epoch}); LoRA folded in: {lora}
- weights: {dtype}; {queries} query tokens per image, image slot token `{slot}` (id {slot_id})
- stops at: {stops}

The vision tower's final layer norm is the project's `ln_vision`, whose eps is {ln_eps} there;
transformers' BLIP-2 vision config has one eps for every norm, the blocks' {vit_eps}. The logits
then differ from the project's (by 1e-6 to 4e-5 on its tiny test models); after
`model.vision_model.post_layernorm.eps = {ln_eps}` they differ by under 1e-6 there (0.0 without LoRA).

## Load

```python
from PIL import Image
from transformers import AutoProcessor, Blip2ForConditionalGeneration

model = Blip2ForConditionalGeneration.from_pretrained("{name}")
processor = AutoProcessor.from_pretrained("{name}")
processor.chat_template = processor.tokenizer.chat_template  # transformers 5.24's Blip2Processor drops it on load
messages = [{{"role": "user", "content": [
    {{"type": "image", "image": Image.open("picture.png")}},
    {{"type": "text", "text": "What colour is the shape?"}},
]}}]
inputs = processor.apply_chat_template(
    messages, add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt",
    sanitize_control_tokens=True,
)
out = model.generate(**inputs, generation_config=model.generation_config)
print(processor.decode(out[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True).strip())
```

Each image part becomes `<Img>` + {queries} slot tokens + `</Img>` where it stands in the message, and a
text right after an image is written after a space, as the project's chat does.
`sanitize_control_tokens=True` keeps special-token strings typed in messages as text, as the
project's prompts do.
"""


def model_card(model, args, checkpoint, dtype_name):
    tok = model.llm_tokenizer
    cfg = model.cfg
    return MODEL_CARD.format(
        name=os.path.basename(os.path.abspath(args.output_dir)),
        llm=type(model.llm_model).__name__,
        ckpt=os.path.abspath(args.ckpt_path),
        model_type=cfg.model_type,
        epoch=checkpoint.get("epoch"),
        lora=bool(cfg.get_lora),
        dtype=dtype_name,
        queries=model.num_query_token,
        slot=tok.decode([model.replace_image_token_id]),
        slot_id=model.replace_image_token_id,
        stops=", ".join(f"`{tok.decode([i])}` ({i})" for i in model.stop_ids),
        ln_eps=model.ln_vision.eps,
        vit_eps=model.visual_encoder.config.layer_norm_eps,
    )


def check_output_dir(path):
    if os.path.exists(path) and (not os.path.isdir(path) or os.listdir(path)):
        raise ExportError(f"--output-dir {path} exists and is not an empty folder: name a new one")
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise ExportError(f"--output-dir {path}: its parent folder {parent} does not exist")


def write_folder(folder, model, hf, proc, card, max_shard_size):
    hf.save_pretrained(folder, safe_serialization=True, max_shard_size=max_shard_size)
    mode = new_file_mode()  # transformers writes its shards 0o600, the other files by the umask
    for name in os.listdir(folder):
        if name.endswith(".safetensors"):
            os.chmod(os.path.join(folder, name), mode)
    generation_config(model).save_pretrained(folder)
    proc.save_pretrained(folder)
    with open(os.path.join(folder, "README.md"), "w", encoding="utf-8") as f:
        f.write(card)


def run(args):
    """Export as `args` asks; returns {"export": the folder written}."""
    check_output_dir(args.output_dir)
    state, checkpoint = read_trained_checkpoint(args.ckpt_path)
    cfg = trained_config(args.cfg_path, checkpoint, args.options, args.ckpt_path)
    model = build_trained_model(cfg, state, args.ckpt_path)
    if cfg.model_cfg.get_lora:
        fold_adapters(model)
    llm_dtype = next(model.llm_model.parameters()).dtype
    dtype_name = args.dtype or next((name for name, d in DTYPES.items() if d == llm_dtype), "fp32")
    hf = blip2_model(model, dtype_named(dtype_name))
    proc = processor(model)
    card = model_card(model, args, checkpoint, dtype_name)
    target = os.path.abspath(args.output_dir)
    # beside the target (so that the rename stays on one file system), made with the user's umask
    tmp = os.path.join(os.path.dirname(target), f".tmp-export-{os.path.basename(target)}-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)  # a crashed export's, by its name
    os.mkdir(tmp)
    try:
        write_folder(tmp, model, hf, proc, card, args.max_shard_size)
        if os.path.isdir(args.output_dir):
            os.rmdir(args.output_dir)  # empty (checked above)
        os.rename(tmp, args.output_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return {"export": args.output_dir}


def parse_args(argv=None):
    parser = checkpoint_tool_parser(
        __doc__.splitlines()[0], "checkpoint_<epoch>.pth of a run", "a new (or empty) folder for the export"
    )
    parser.add_argument("--dtype", choices=list(DTYPES), default=None, help="weights' dtype (default: the LLM's)")
    parser.add_argument("--max-shard-size", default="5GB", help="largest safetensors shard (default 5GB)")
    return parser.parse_args(argv)


def main(argv=None):
    return checkpoint_tool_main(run, parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
