"""The MiniGPT4Qwen model package: model, prompt building."""

from lavis.models.minigpt4qwen.model import MiniGPT4Qwen

__all__ = ["MiniGPT4Qwen"]
