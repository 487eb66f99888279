"""The language model and its tokenizers.

* `qwen_llm.py`: a Qwen-style decoder on transformers' `Qwen2ForCausalLM`, built from `llm_arch`;
* `qwen_weights.py`: Qwen hub folders (Qwen-7B-Chat converted, Qwen1.5/2/2.5 as they are) loaded
  into it, shard by shard;
* `qwen_tiktoken.py`: Qwen-1's tiktoken tokenizer (`qwen.tiktoken`); `bpe_train.py` trains a small
  vocabulary in its format (the tiny default's);
* `llm_tokenizer.py`: `load_llm_tokenizer`, which picks that tokenizer or a transformers one behind
  the same interface.
"""
