"""`image_text_pretrain`: the original's task name for MiniGPT4Qwen instruction tuning."""

from lavis.common.registry import registry
from lavis.tasks.base_task import BaseTask


@registry.register_task("image_text_pretrain")
class ImageTextPretrainTask(BaseTask):
    """Train on the conversations' labelled tokens; evaluate by exact match on held-out splits."""
