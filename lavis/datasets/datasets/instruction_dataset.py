"""Instruction-tuning samples from the original's JSON annotations, ready for the model.

Two row formats are read (both from MiniGPT4Qwen's data):
  * single-turn (MiniGPT-4 style): {"image": "x.jpg", "instruction": "<Img><ImageHere></Img> ...",
    "output": "..."}; `instruction`/`output` may also be equal-length lists (several turns);
  * multi-turn (LLaVA style): {"image": "x.jpg" or [...], "conversations": [{"from": "user", "value": ...},
    {"from": "assistant", "value": ...}, ...]};
  * video rows (the original's later format, VideoChatGPT's): {"video": "x.mp4" or [...], "conversations": ...}
    with one `<video>` per video in the user turns (images and videos may be mixed in one row).
Image and video paths are relative to the dataset's image folder.  A video's `<video>` becomes its
frames' slots in order (`max_frames` sampled uniformly, `lavis/processors/video.py`), each slot
optionally preceded by `frame_marker` ("{i}": the frame's number from 1).  Rows that cannot be used (missing
keys, wrong types, a number of `<ImageHere>` (or `<video>`) different from the number of images
(or videos), a missing file) are skipped at load time with one warning that names file, row and reason;
an image or video that turns out unreadable at training time is reported (file and row) and
replaced by the next readable sample, so a run never dies on one bad file.  A file that cannot
be read at all (missing, a directory, not permitted, not UTF-8, empty, not JSON, nested too
deeply: `lavis/common/json_files.py`) is one AnnotationError naming it and why; so is a dataset
with no usable row, or no readable image or video at all, with the first reasons.

For exact resume the runner calls `set_epoch(seed, epoch)` on training sets: random image
augmentation of sample i then draws from torch's CPU generator seeded with (seed, epoch, i), so
it does not depend on which worker, rank or resumed run loads the sample.  `lengths()` gives
the token-length estimates that `run.group_by_length` sorts by.
"""

import contextlib
import logging
import os
import re
import warnings

import torch
from PIL import Image
from torch.utils.data import Dataset

from lavis.common.errors import UserError
from lavis.common.json_files import read_json
from lavis.processors.chat_format import IMAGE_TOKEN, ROLE_ALIASES
from lavis.processors.video import VideoError, read_frames

#: A video's place in a user turn, once the data's own mark (`video_placeholder`) is read
VIDEO_TOKEN = "<video>"

#: What a caption row's user turn asks (one drawn per sample), unless the dataset config lists others
CAPTION_INSTRUCTIONS = (
    "Describe the image briefly.",
    "Write a short caption for the image.",
    "简要描述这张图片。",
    "用一句话描述这张图片。",
)


class AnnotationError(UserError, ValueError):
    """An annotation file that cannot be read at all, or a dataset with no usable sample."""


#: How many reasons a "no usable sample" error lists
SHOWN_REASONS = 3


def _paths(row, key):
    paths = row.get(key, [])
    paths = [paths] if isinstance(paths, str) else paths
    if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
        raise ValueError(f"'{key}' must be a path or a list of paths")
    return paths


def normalise_row(row, vis_root=None, placeholder=IMAGE_TOKEN, video_placeholder=VIDEO_TOKEN):
    """One annotation row -> {"images": [...], "videos": [...], "conversations": [...], "caption": ...,
    "meta": {...}}; ValueError if unusable.  `placeholder` is the data's image mark in user turns
    (LLaVA's `<image>`), which becomes `<ImageHere>`, and `video_placeholder` its video mark, which
    becomes `<video>`; a caption row's conversation is made per sample (`caption` set)."""
    if not isinstance(row, dict):
        raise ValueError(f"row is a {type(row).__name__}, not an object")
    images, videos = _paths(row, "image"), _paths(row, "video")
    caption = None
    if "conversations" in row:
        conversations = row["conversations"]
        if not isinstance(conversations, list) or not conversations:
            raise ValueError("'conversations' must be a non-empty list")
        for i, message in enumerate(conversations):
            if not isinstance(message, dict) or not isinstance(message.get("value"), str):
                raise ValueError(f"conversations[{i}] must be an object with a string 'value'")
            if str(message.get("from", "")).lower() not in ROLE_ALIASES:
                raise ValueError(f"conversations[{i}] has unknown role {message.get('from')!r}")
    elif "instruction" in row and "output" in row:
        instructions, outputs = row["instruction"], row["output"]
        if isinstance(instructions, str) and isinstance(outputs, str):
            instructions, outputs = [instructions], [outputs]
        if not (isinstance(instructions, list) and isinstance(outputs, list) and len(instructions) == len(outputs)):
            raise ValueError("'instruction' and 'output' must be strings or lists of equal length")
        if not all(isinstance(t, str) for t in instructions + outputs):
            raise ValueError("'instruction' and 'output' entries must be strings")
        conversations = []
        for question, answer in zip(instructions, outputs):
            conversations += [{"from": "user", "value": question}, {"from": "assistant", "value": answer}]
    elif "caption" in row:  # LAVIS's caption rows: the instruction is drawn per sample
        caption = row["caption"]
        if not isinstance(caption, str) or not caption.strip() or len(images) != 1:
            raise ValueError("a caption row needs one 'image' and a non-empty string 'caption'")
        conversations = [{"from": "user", "value": placeholder}, {"from": "assistant", "value": caption}]
    else:
        raise ValueError("row needs 'conversations', 'instruction' and 'output', or 'caption'")
    marks = ((placeholder, IMAGE_TOKEN), (video_placeholder, VIDEO_TOKEN))
    if any(theirs != ours for theirs, ours in marks):  # the data's marks become ours, in user turns only
        conversations = [
            {**m, "value": _replace_marks(m["value"], marks)} if ROLE_ALIASES[str(m["from"]).lower()] == "user" else m
            for m in conversations
        ]
    user_text = "".join(m["value"] for m in conversations if ROLE_ALIASES[str(m["from"]).lower()] == "user")
    for mark, ours, paths, what in (
        (placeholder, IMAGE_TOKEN, images, "image"),
        (video_placeholder, VIDEO_TOKEN, videos, "video"),
    ):
        if user_text.count(ours) != len(paths):
            raise ValueError(f"{user_text.count(ours)} {mark} in user turns but {len(paths)} {what}(s)")
    if vis_root is None and (images or videos):
        raise ValueError("the row shows images or videos but the dataset has no image folder (build_info.images)")
    for path, what in [(p, "image") for p in images] + [(p, "video") for p in videos]:
        if not os.path.isfile(os.path.join(vis_root, path)):
            raise ValueError(f"{what} file not found: {os.path.join(vis_root, path)}")
    meta = {
        k: v for k, v in row.items() if k not in ("image", "video", "conversations", "instruction", "output", "caption")
    }
    return {"images": images, "videos": videos, "conversations": conversations, "caption": caption, "meta": meta}


def _replace_marks(text, marks):
    """`text` with each data mark replaced by ours, in one pass (a mark may contain another)."""
    table = {theirs: ours for theirs, ours in marks}
    pattern = "|".join(re.escape(m) for m in sorted(table, key=len, reverse=True))
    return re.sub(pattern, lambda match: table[match.group(0)], text)


def load_annotations(
    ann_paths, vis_root, placeholder=IMAGE_TOKEN, max_skipped_share=1.0, video_placeholder=VIDEO_TOKEN
):
    """The usable rows of the annotation files; the others are skipped with one warning, and more
    than `max_skipped_share` of them skipped, or none usable, stops with an AnnotationError."""
    rows, problems = [], []
    for ann_path in ann_paths:
        data = read_json(ann_path, AnnotationError)
        if not isinstance(data, list):
            raise AnnotationError(f"{ann_path}: must hold a JSON list of rows, not {_json_kind(data)}")
        for index, row in enumerate(data):
            try:
                rows.append(
                    {**normalise_row(row, vis_root, placeholder, video_placeholder), "where": f"{ann_path} row {index}"}
                )
            except ValueError as err:
                problems.append(f"{ann_path} row {index}: {err}")
            except RecursionError:  # str() of a value nested as deep as the parser allows
                problems.append(f"{ann_path} row {index}: nested too deeply")
    if not rows:
        reasons = "; ".join(problems[:SHOWN_REASONS]) if problems else "the files hold no rows"
        raise AnnotationError(f"no usable rows in {list(ann_paths)}: {reasons}")
    if problems:
        shown = "\n  ".join(problems[:10])
        more = f"\n  ... and {len(problems) - 10} more" if len(problems) > 10 else ""
        warnings.warn(f"skipped {len(problems)} unusable annotation row(s):\n  {shown}{more}", stacklevel=2)
        share = len(problems) / (len(problems) + len(rows))
        if share > max_skipped_share:
            raise AnnotationError(
                f"{len(problems)} of {len(problems) + len(rows)} rows ({share:.0%}) of {list(ann_paths)} are unusable, "
                f"more than max_skipped_share {max_skipped_share:.0%} (the first: {problems[0]})"
            )
    return rows


class InstructionDataset(Dataset):
    def __init__(
        self,
        vis_processor,
        text_processor,
        vis_root,
        ann_paths,
        image_placeholder=IMAGE_TOKEN,
        caption_instructions=None,
        max_skipped_share=1.0,
        video_placeholder=VIDEO_TOKEN,
        max_frames=8,
        frame_marker="",
    ):
        self.vis_root = vis_root
        self.vis_processor = vis_processor
        self.text_processor = text_processor
        self.caption_instructions = list(caption_instructions or CAPTION_INSTRUCTIONS)
        self.max_frames = max_frames
        self.frame_marker = frame_marker
        self.annotation = load_annotations(ann_paths, vis_root, image_placeholder, max_skipped_share, video_placeholder)
        self._augment_seed = None
        self.feature_store = None  # {image or video path: cached Q-former outputs}, set by use_feature_store

    def set_epoch(self, seed, epoch):
        self._augment_seed = (int(seed), int(epoch))

    @contextlib.contextmanager
    def _sample_rng(self, index):
        if self._augment_seed is None:
            yield
            return
        seed, epoch = self._augment_seed
        with torch.random.fork_rng(devices=[]):  # the caller's CPU generator is left as it was
            torch.default_generator.manual_seed((seed * 1_000_003 + epoch) * 10_000_019 + index)
            yield

    def _caption_instruction(self, index):
        """Sample `index`'s caption instruction: drawn from (seed, epoch, index) when training (set_epoch),
        else from the index alone, so a resumed run and every worker draw the same one."""
        seed, epoch = self._augment_seed or (0, 0)
        generator = torch.Generator().manual_seed((seed * 1_000_003 + epoch) * 10_000_019 + index)
        return self.caption_instructions[int(torch.randint(len(self.caption_instructions), (1,), generator=generator))]

    def lengths(self, image_tokens):
        """A cheap estimate of each sample's token count: UTF-8 bytes of its text / 3 (about one
        token per Chinese character or per 3 to 4 English letters) + `image_tokens` per image."""
        return [
            sum(len(str(m["value"]).encode("utf-8")) for m in row["conversations"]) // 3
            + image_tokens * (len(row["images"]) + self.max_frames * len(row["videos"]))
            for row in self.annotation
        ]

    def image_paths(self):
        """The distinct image paths (relative to `vis_root`) of every row, in first-use order."""
        return list(dict.fromkeys(p for row in self.annotation for p in row["images"]))

    def video_paths(self):
        """The distinct video paths (relative to `vis_root`) of every row, in first-use order."""
        return list(dict.fromkeys(p for row in self.annotation for p in row["videos"]))

    def video_frames(self, path):
        """The video's sampled frames (PIL RGB), as this dataset reads them."""
        return read_frames(os.path.join(self.vis_root, path), self.max_frames)

    def use_feature_store(self, store):
        """Serve cached Q-former outputs (store[path] -> tensor) instead of processed images."""
        self.feature_store = store

    def __len__(self):
        return len(self.annotation)

    def _load_image(self, path):
        if self.feature_store is not None:
            return self.feature_store[path]
        full = os.path.join(self.vis_root, path)
        with Image.open(full) as image:
            return self.vis_processor(image.convert("RGB"))

    def _load_video(self, path):
        if self.feature_store is not None:
            return list(self.feature_store[path])
        return [self.vis_processor(frame) for frame in self.video_frames(path)]

    def _frame_slots(self, count):
        return "".join(self.frame_marker.format(i=k + 1) + IMAGE_TOKEN for k in range(count))

    def _with_media(self, row):
        """(images and frames in slot order, conversations with each `<video>` expanded to its frames' slots)."""
        images, videos = iter(row["images"]), iter(row["videos"])
        media, conversations = [], []
        for message in row["conversations"]:
            if ROLE_ALIASES[str(message["from"]).lower()] != "user":
                conversations.append(message)
                continue
            pieces = []
            for piece in re.split(f"({re.escape(IMAGE_TOKEN)}|{re.escape(VIDEO_TOKEN)})", message["value"]):
                if piece == IMAGE_TOKEN:
                    media.append(self._load_image(next(images)))
                elif piece == VIDEO_TOKEN:
                    frames = self._load_video(next(videos))
                    media += frames
                    piece = self._frame_slots(len(frames))
                pieces.append(piece)
            conversations.append({**message, "value": "".join(pieces)})
        return media, conversations

    def __getitem__(self, index):
        reasons = []
        for attempt in range(len(self.annotation)):
            row = self.annotation[(index + attempt) % len(self.annotation)]
            try:
                with self._sample_rng((index + attempt) % len(self.annotation)):
                    images, source = self._with_media(row)
            except (OSError, Image.DecompressionBombError, ValueError) as err:  # VideoError is a ValueError
                what = "video" if isinstance(err, VideoError) else "image"
                reasons.append(f"{row['where']}: {' '.join(str(err).split())}")
                logging.warning(
                    "unreadable %s in sample %d (%s, %s): %s; using the next sample",
                    what,
                    index + attempt,
                    row["where"],
                    row["images"] + row["videos"],
                    err,
                )
                continue
            if row["caption"] is not None:  # the image, then one of the caption instructions
                instruction = self._caption_instruction((index + attempt) % len(self.annotation))
                source = [{"from": "user", "value": f"<Img>{source[0]['value']}</Img> {instruction}"}, source[1]]
            conversations = [
                {
                    "from": m["from"],
                    "value": self.text_processor(m["value"])
                    if ROLE_ALIASES[str(m["from"]).lower()] == "user"
                    else m["value"],
                }
                for m in source
            ]
            key = "image" if self.feature_store is None else "image_features"
            return {
                key: images,
                "conversations": conversations,
                "meta": row["meta"],
                "index": (index + attempt) % len(self.annotation),
                "where": row["where"],
            }
        shown = "; ".join(reasons[:SHOWN_REASONS])
        raise AnnotationError(f"no readable image or video in the whole dataset ({len(reasons)} samples): {shown}")

    @staticmethod
    def collater(samples):
        images = [image for sample in samples for image in sample.get("image", [])]
        features = [feature for sample in samples for feature in sample.get("image_features", [])]
        return {
            "image": torch.stack(images) if images else None,
            "image_features": torch.stack(features) if features else None,
            "conversations": [sample["conversations"] for sample in samples],
            "meta": [sample["meta"] for sample in samples],
            "index": [sample["index"] for sample in samples],
            "where": [sample["where"] for sample in samples],  # annotation file and row, for messages
        }


def _json_kind(value):
    """A JSON value's kind in JSON's words (an object, a string, ...)."""
    kinds = ((dict, "an object"), (str, "a string"), (bool, "a boolean"), ((int, float), "a number"))
    return next((name for kind, name in kinds if isinstance(value, kind)), "null")
