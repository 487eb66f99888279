"""The language model and its tokenizers.

* `hf_llm.py`: the LLM of a config: any transformers chat LLM folder (`AutoModelForCausalLM`, no
  remote code), Qwen-7B-Chat through `qwen_weights.py`, or a decoder of `llm_arch.family` from scratch;
* `qwen_llm.py`: a Qwen-style decoder on transformers' `Qwen2ForCausalLM` (the tiny default);
* `qwen_weights.py`: Qwen-7B-Chat's hub folder converted into it exactly, shard by shard;
* `qwen_tiktoken.py`: Qwen-1's tiktoken tokenizer (`qwen.tiktoken`); `bpe_train.py` trains a small
  vocabulary in its format (the tiny default's);
* `llm_tokenizer.py`: `load_llm_tokenizer`, which picks that tokenizer or a transformers one behind
  the same interface.
"""
