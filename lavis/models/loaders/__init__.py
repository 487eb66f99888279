"""Loading the original MiniGPT4Qwen files into this implementation, number for number.

Files (each path a model-config key, relative paths under the cache root):

=====================  ===============================================  =========================
config key             file                                             loaded by
=====================  ===============================================  =========================
``vit_ckpt``           ``ckpt/eva/eva_vit_g.pth`` (LAVIS EVA-ViT-G)      :func:`vit.load_eva_vit`
``qformer_config``     ``ckpt/bert-base-uncased/config.json``           :func:`blip2.build_qformer_for`
``pretrained``         ``ckpt/blip2/blip2_pretrained_flant5xxl.pth``    :func:`blip2.load_blip2_pretrained`
``llm_model``          ``ckpt/Qwen7B-chat/`` (or a Qwen2-format folder)  :func:`qwen.load_llm`
(tokenizer)            ``qwen.tiktoken`` / ``tokenizer.json``            :func:`tokenizer.load_llm_tokenizer`
``finetuned``/``ckpt``  original MiniGPT4Qwen checkpoints               :func:`minigpt4qwen.convert_checkpoint_keys`
=====================  ===============================================  =========================

Every `.pth`/`.bin` is read with ``weights_only=True`` (file-backed with ``mmap``); problems stop
with a :class:`files.WeightFileError` naming the file and keys.
"""

from lavis.models.loaders.blip2 import build_qformer_for, load_blip2_pretrained
from lavis.models.loaders.files import WeightFileError
from lavis.models.loaders.minigpt4qwen import convert_checkpoint_keys
from lavis.models.loaders.qwen import SequenceTooLongError, build_language_model, load_llm
from lavis.models.loaders.tokenizer import HFQwenTokenizer, load_llm_tokenizer
from lavis.models.loaders.vit import build_vision_encoder, load_eva_vit

__all__ = [
    "HFQwenTokenizer",
    "SequenceTooLongError",
    "WeightFileError",
    "build_language_model",
    "build_qformer_for",
    "build_vision_encoder",
    "convert_checkpoint_keys",
    "load_blip2_pretrained",
    "load_eva_vit",
    "load_llm",
    "load_llm_tokenizer",
]
