"""Synthetic bilingual video set: one shape moving left, right, up or down (the video path's proof).

`ensure_moving_shapes(root)` writes, once (`generation.ensure_generated`), under
`cache/dataset/moving_shapes/`:

    video/00000.mp4 ...             train clips (H.264 through PyAV, `num_frames` frames each)
    video/val_00000.mp4 ...         held-out clips (separate draws)
    video/val_00000_reversed.mp4    the same held-out clips, frames in reverse order
    video/00000_end.png ...         the first or the last frame of each train clip, as an image
    train.json                      {"video", "conversations"}: "<video>\nWhich way does the shape move?" -> "left";
                                    a quarter of the clips are asked the shape's colour instead (an easy first
                                    signal through the image side, as the default set's colour questions are);
                                    and one image row per clip, {"image": "00000_end.png"}, asks where the shape
                                    is ("left" / "right" along the clip's axis of travel, or "top" / "bottom"):
                                    the single-frame skill a direction is read from, as "which one is red" is
                                    read from each image of a pair
    val.json                        held-out direction questions, with "qtype": "direction" and "lang"
    val_reversed.json               the reversed clips, each answered with the opposite direction
    manifest.json                   parameters + format version, written last

A clip's frames hold the same shape, colour and background; only the position changes, by the
same step each frame, across at least 60 % of the image, near the middle across that axis.  The
set of frames of a clip and of its reversed copy is the same, so a model that ignores the frames'
order answers both alike and scores at most 50 % over val + val_reversed; one that reads the
order scores high on both.
Every question is answered with every direction (balanced), so the text alone gives chance, 25 %.
"""

import random
import shutil
from collections import Counter

import av
import numpy as np

from lavis.datasets.synthetic.generation import balanced, ensure_generated, write_json
from lavis.datasets.synthetic.shapes import ANSWERS as SHAPE_ANSWERS
from lavis.datasets.synthetic.shapes import COLOURS, SHAPES, background_tint, draw_shape

FORMAT_VERSION = 7  # 2: colour questions; 4: travel >= 60 %; 5: a quarter colour; 6: frame position rows;
# 7: the shape stays near the middle across its axis of travel
DEFAULT_ROOT = "cache/dataset/moving_shapes"
DIRECTIONS = ("left", "right", "up", "down")
OPPOSITE = {"left": "right", "right": "left", "up": "down", "down": "up"}
ANSWERS = {
    "en": {d: d for d in DIRECTIONS},
    "zh": {"left": "向左", "right": "向右", "up": "向上", "down": "向下"},
}
QUESTIONS = {
    "en": ("Which way does the shape move?", "In which direction is the shape moving?"),
    "zh": ("图形往哪个方向移动？", "这个图形朝哪边移动？"),
}
COLOUR_QUESTIONS = {"en": ("What colour is the moving shape?",), "zh": ("移动的图形是什么颜色？",)}
# Where a frame shows the shape, along the clip's axis: at the start or the end of its travel it
# is near one edge (travel >= 60 % of the image), so the half is never in doubt.
POSITION_QUESTIONS = {
    "horizontal": {"en": "Is the shape on the left or on the right?", "zh": "图形在左边还是右边？"},
    "vertical": {"en": "Is the shape at the top or at the bottom?", "zh": "图形在上边还是下边？"},
}
POSITION_ANSWERS = {
    "en": {"left": "left", "right": "right", "top": "top", "bottom": "bottom"},
    "zh": {"left": "左边", "right": "右边", "top": "上边", "bottom": "下边"},
}
_FILES = ("train.json", "val.json", "val_reversed.json")
_SIDE = 0.3  # the shape's side as a fraction of the image's
_FPS = 4


def write_video(path, frames, fps=_FPS):
    """Frames (PIL RGB, same size) -> an H.264 MP4 (near-lossless: the colours stay apart)."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps, options={"crf": "12"})
        stream.width, stream.height = frames[0].size
        stream.pix_fmt = "yuv420p"
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(np.asarray(frame), format="rgb24")))
        container.mux(stream.encode())


def clip(rng, direction, num_frames, image_size):
    """(frames, meta) of one shape moving in `direction` over `num_frames` frames."""
    shape, colour = rng.choice(SHAPES), rng.choice(list(COLOURS))
    side = round(_SIDE * image_size)
    span = image_size - side
    travel = rng.randint(round(0.6 * image_size), span)  # how far it goes, first frame to last
    start = rng.randint(0, span - travel)
    along = [start + round(travel * k / (num_frames - 1)) for k in range(num_frames)]
    if direction in ("left", "up"):
        along = along[::-1]
    # Near the middle across the axis of travel, so one frame tells the axis: a shape in a corner
    # could be on either axis, and the direction would need both frames' positions compared.
    across = span // 2 + rng.randint(-span // 8, span // 8)
    background = background_tint(rng)
    frames = []
    for a in along:
        origin = (a, across) if direction in ("left", "right") else (across, a)
        frames.append(draw_shape(shape, colour, image_size, rng, size=side, origin=origin, background=background)[0])
    return frames, {"shape": shape, "colour": colour, "direction": direction}


def _row(video, question, answer, **meta):
    return {
        "video": video,
        "conversations": [{"from": "user", "value": f"<video>\n{question}"}, {"from": "assistant", "value": answer}],
        **meta,
    }


def _position_row(rng, name, frames, direction, lang):
    """An image row: the clip's first or last frame, asked which half the shape is in."""
    last = rng.random() < 0.5
    horizontal = direction in ("left", "right")
    # The shape starts near the edge it moves away from and ends near the one it moves towards.
    towards = {"left": "left", "right": "right", "up": "top", "down": "bottom"}[direction]
    away = {"left": "right", "right": "left", "up": "bottom", "down": "top"}[direction]
    where = towards if last else away
    image = name.replace(".mp4", "_end.png")
    return (
        image,
        frames[-1 if last else 0],
        {
            "image": image,
            "conversations": [
                {
                    "from": "user",
                    "value": f"<ImageHere>\n{POSITION_QUESTIONS['horizontal' if horizontal else 'vertical'][lang]}",
                },
                {"from": "assistant", "value": POSITION_ANSWERS[lang][where]},
            ],
        },
    )


def _generate(root, params):
    folder = root / "video"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    n_frames, size = params["num_frames"], params["image_size"]
    rows = {"train": [], "val": [], "val_reversed": []}
    for split, count in (("train", params["num_train"]), ("val", params["num_val"])):
        rng = random.Random(f"moving-shapes:{params['seed']}:{split}")
        cells = [(d, lang) for d in DIRECTIONS for lang in ANSWERS]
        for i, (direction, lang) in enumerate(balanced(rng, cells, count)):
            frames, meta = clip(rng, direction, n_frames, size)
            name = f"{i:05d}.mp4" if split == "train" else f"val_{i:05d}.mp4"
            write_video(folder / name, frames)
            if split == "train" and i % 4 == 3:
                question, answer = rng.choice(COLOUR_QUESTIONS[lang]), SHAPE_ANSWERS["colour"][lang][meta["colour"]]
            else:
                question, answer = rng.choice(QUESTIONS[lang]), ANSWERS[lang][direction]
            extra = {} if split == "train" else {"qtype": "direction", "lang": lang}
            rows[split].append(_row(name, question, answer, **extra))
            if split == "train":
                image, frame, row = _position_row(rng, name, frames, direction, lang)
                frame.save(folder / image)
                rows[split].append(row)
            if split == "val":
                reversed_name = name.replace(".mp4", "_reversed.mp4")
                write_video(folder / reversed_name, frames[::-1])
                rows["val_reversed"].append(_row(reversed_name, question, ANSWERS[lang][OPPOSITE[direction]], **extra))
    for split, split_rows in rows.items():
        write_json(root / f"{split}.json", split_rows)
    return {
        split: dict(Counter(r["conversations"][1]["value"] for r in split_rows)) for split, split_rows in rows.items()
    }


def ensure_moving_shapes(root=DEFAULT_ROOT, num_train=2000, num_val=200, num_frames=8, image_size=64, seed=0):
    """Generate the set under `root` unless a complete copy with these parameters is there."""
    if num_train < 1 or num_val < 0 or num_frames < 2:
        raise ValueError(
            f"need num_train >= 1, num_val >= 0, num_frames >= 2; got {num_train}, {num_val}, {num_frames}"
        )
    params = {
        "num_train": num_train,
        "num_val": num_val,
        "num_frames": num_frames,
        "image_size": image_size,
        "seed": seed,
    }
    return ensure_generated(root, params, FORMAT_VERSION, _FILES, "video", _generate)
