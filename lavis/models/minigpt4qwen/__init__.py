"""The composed model: `model.py` (ViT -> Q-former -> llm_proj -> LLM, registered as `minigpt4qwen`), the
files a config needs (`required_files.py`) and the original's whole-model checkpoints (`checkpoint_keys.py`)."""

from lavis.models.minigpt4qwen.model import MiniGPT4Qwen

__all__ = ["MiniGPT4Qwen"]
