"""Benchmark items (`lavis/datasets/eval_data/`) as samples for evaluation: each item's image
opened (a path or encoded bytes), made RGB and put through the vis processor.

`collater` stacks the images and keeps the items (everything but the image) as a list, for the
task to build prompts from and score against.  An image that cannot be read stops the evaluation
with one line naming the question and the image: a benchmark scored without some of its
questions would not be the benchmark.
"""

import io

import torch
from PIL import Image
from torch.utils.data import Dataset

from lavis.datasets.eval_data import EvalDataError


def describe_image(image):
    """The item's image for a message: its path, or its size when it is bytes."""
    return f"<{len(image)} bytes of image data>" if isinstance(image, (bytes, bytearray)) else str(image)


class EvalDataset(Dataset):
    def __init__(self, items, vis_processor):
        self.items = list(items)
        self.vis_processor = vis_processor

    def __len__(self):
        return len(self.items)

    def _image(self, item):
        image = item["image"]
        if image is None:
            return None
        try:
            source = io.BytesIO(image) if isinstance(image, (bytes, bytearray)) else image
            with Image.open(source) as opened:
                rgb = opened.convert("RGB")
        except (OSError, ValueError, Image.DecompressionBombError) as err:
            reason = " ".join(str(err).split("\n"))
            raise EvalDataError(
                f"question {item['question_id']}: unreadable image {describe_image(image)} ({reason})"
            ) from None
        return self.vis_processor(rgb)

    def __getitem__(self, index):
        item = self.items[index]
        return {
            "question_id": item["question_id"],
            "image": self._image(item),
            "item": {k: v for k, v in item.items() if k != "image"},
        }

    @staticmethod
    def collater(samples):
        images = [sample["image"] for sample in samples]
        if all(image is None for image in images):
            stacked = None
        elif any(image is None for image in images):
            raise ValueError("a batch mixes items with and without an image")
        else:
            stacked = torch.stack(images)
        return {
            "question_id": [sample["question_id"] for sample in samples],
            "image": stacked,
            "item": [sample["item"] for sample in samples],
        }
