"""Video rows (`{"video": "x.mp4", "conversations": ...}`): frames sampled, `<video>` expanded to
their slots in order, mixed with images, decoded in DataLoader workers; bad videos skipped; the
synthetic moving-shapes set and its builder."""

import json
import shutil

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image

from lavis.common.config import ConfigError, build_dataset_config
from lavis.common.registry import registry
from lavis.datasets.synthetic.moving_shapes import OPPOSITE, write_video
from lavis.processors.video import read_frames
from tests.datasets.test_released_formats import write_image

PROCESSORS = {"vis_processor": {"train": {"name": "blip_image_eval", "image_size": 32}}}


def build(tmp_path, rows, **extra):
    """The registered `video_instruction` dataset on `rows`, media under tmp_path/media."""
    (tmp_path / "ann.json").write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    user = {
        "build_info": {
            "annotations": {"train": {"storage": str(tmp_path / "ann.json")}},
            "images": {"storage": str(tmp_path / "media")},
        },
        **PROCESSORS,
        **extra,
    }
    cfg = build_dataset_config("video_instruction", OmegaConf.create(user))
    return registry.get_builder_class("video_instruction")(cfg).build_datasets()["train"]


def numbered_video(path, count, base):
    """A clip whose frame k is a flat grey of level base + 10 k (so a frame tells its number)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_video(path, [Image.new("RGB", (32, 32), (base + 10 * k,) * 3) for k in range(count)])


def level(pixels):
    """The grey level of a processed frame (undoing blip_image_eval's normalisation)."""
    mean = torch.tensor([0.48145466, 0.4578275, 0.40821073])
    std = torch.tensor([0.26862954, 0.26130258, 0.27577711])
    return float(((pixels.mean((1, 2)) * std + mean) * 255).mean())


def rows(question="<video>\nWhat happens?"):
    return [
        {
            "id": "v1",
            "video": "clips/a.mp4",
            "conversations": [{"from": "human", "value": question}, {"from": "gpt", "value": "It brightens."}],
        },  # noqa: E501
    ]


@pytest.fixture
def media(tmp_path):
    numbered_video(tmp_path / "media" / "clips" / "a.mp4", 8, 20)
    numbered_video(tmp_path / "media" / "clips" / "b.mp4", 3, 150)
    write_image(tmp_path / "media", "img/red.png", (220, 30, 30))
    return tmp_path


def test_a_video_becomes_max_frames_slots_with_markers_in_order(media):
    dataset = build(media, rows(), max_frames=4, frame_marker="Frame {i}: ")
    sample = dataset[0]
    assert len(sample["image"]) == 4
    assert [round((level(p) - 20) / 10) for p in sample["image"]] == [1, 3, 5, 7]  # frames 1, 3, 5, 7 of 8
    assert sample["conversations"][0]["value"] == (
        "Frame 1: <ImageHere>Frame 2: <ImageHere>Frame 3: <ImageHere>Frame 4: <ImageHere>\nWhat happens?"
    )
    assert sample["conversations"][1]["value"] == "It brightens."
    assert dataset.lengths(8)[0] == 8 * 4 + len("<video>\nWhat happens?It brightens.") // 3


def test_images_and_videos_in_one_row_take_their_slots_in_text_order(media):
    row = {
        "image": "img/red.png",
        "video": ["clips/a.mp4", "clips/b.mp4"],
        "conversations": [
            {"from": "user", "value": "<video> then <image> then <video>"},
            {"from": "assistant", "value": "ok"},
        ],
    }
    dataset = build(media, [row], max_frames=2, image_placeholder="<image>")
    sample = dataset[0]
    assert sample["conversations"][0]["value"] == "<ImageHere><ImageHere> then <ImageHere> then <ImageHere><ImageHere>"
    levels = [level(p) for p in sample["image"]]
    assert [round((v - 20) / 10) for v in levels[:2]] == [2, 6]  # a.mp4: frames 2 and 6 of 8
    assert sample["image"][2][0].mean() > sample["image"][2][1].mean()  # the red image
    assert [round((v - 150) / 10) for v in levels[3:]] == [0, 2]  # b.mp4: 3 frames, the middles of 2 halves
    batch = dataset.collater([sample, sample])
    assert batch["image"].shape == (10, 3, 32, 32)


def test_the_datas_own_video_mark_is_read(media):
    dataset = build(media, rows("<vid> What happens?"), video_placeholder="<vid>", max_frames=2)
    assert dataset[0]["conversations"][0]["value"] == "<ImageHere><ImageHere> What happens?"


def test_rows_with_a_wrong_mark_count_or_a_missing_video_are_skipped_naming_them(media):
    bad = rows("no mark here") + rows() + [{**rows()[0], "video": "clips/gone.mp4"}]
    with pytest.warns(UserWarning) as record:
        dataset = build(media, bad, max_frames=2)
    message = str(record[0].message)
    assert "skipped 2 unusable annotation row(s)" in message
    assert "ann.json row 0: 0 <video> in user turns but 1 video(s)" in message
    assert "ann.json row 2: video file not found: " in message and "gone.mp4" in message
    assert len(dataset) == 1


def test_an_undecodable_video_is_reported_with_file_and_row_and_the_next_sample_used(media, caplog):
    (media / "media" / "clips" / "broken.mp4").write_bytes(b"not a video at all" * 10)
    dataset = build(media, [{**rows()[0], "video": "clips/broken.mp4"}] + rows(), max_frames=2)
    sample = dataset[0]
    assert sample["index"] == 1 and len(sample["image"]) == 2
    assert "unreadable video in sample 0 (" in caplog.text and "ann.json row 0" in caplog.text
    assert "broken.mp4: cannot decode" in caplog.text


def test_dataloader_workers_decode_the_same_frames(media):
    dataset = build(media, rows() * 4, max_frames=3)
    loaders = [
        torch.utils.data.DataLoader(dataset, batch_size=2, num_workers=n, collate_fn=dataset.collater) for n in (0, 2)
    ]
    serial, workers = ([b["image"] for b in loader] for loader in loaders)
    assert len(workers) == 2 and all(torch.equal(a, b) for a, b in zip(serial, workers))


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("max_frames", 0, r"^config: datasets.video_instruction.max_frames = 0: must be an integer >= 1$"),
        ("frame_marker", "Frame {n}: ", r"'datasets.video_instruction.frame_marker' 'Frame \{n\}: ' is not a format"),
    ],
)
def test_video_settings_out_of_range_are_config_errors(key, value, message):
    with pytest.raises(ConfigError, match=message):
        build_dataset_config("video_instruction", OmegaConf.create({key: value}))


def test_moving_shapes_clips_move_as_labelled_and_reversed_clips_the_other_way(moving_root):
    def centre_x_y(frame):
        array = np.asarray(frame).astype(int)
        mask = np.abs(array - array[0, 0]).sum(-1) > 60  # the shape: far from the corner's background
        ys, xs = np.nonzero(mask)
        return xs.mean(), ys.mean()

    val = json.loads((moving_root / "val.json").read_text(encoding="utf-8"))
    reversed_rows = json.loads((moving_root / "val_reversed.json").read_text(encoding="utf-8"))
    english = {"向左": "left", "向右": "right", "向上": "up", "向下": "down"}
    for row, back in zip(val, reversed_rows):
        direction = english.get(row["conversations"][1]["value"], row["conversations"][1]["value"])
        assert english.get(back["conversations"][1]["value"], back["conversations"][1]["value"]) == OPPOSITE[direction]
        first, *_, last = [centre_x_y(f) for f in read_frames(str(moving_root / "video" / row["video"]), 8)]
        dx, dy = last[0] - first[0], last[1] - first[1]
        moved = ("right" if dx > 0 else "left") if abs(dx) > abs(dy) else ("down" if dy > 0 else "up")
        assert moved == direction and max(abs(dx), abs(dy)) >= 0.6 * 64 - 2
        across = first[1] if direction in ("left", "right") else first[0]
        assert abs(across - 32) <= 64 * 0.7 / 8 + 1  # near the middle across the travel (format 7)
        frames = read_frames(str(moving_root / "video" / back["video"]), 8)
        assert centre_x_y(frames[0]) == pytest.approx(last, abs=1) and row["lang"] == back["lang"]

    # each train clip's single-frame row: the shape's half of the image, along the clip's axis
    halves = {"左边": "left", "右边": "right", "上边": "top", "下边": "bottom"}
    train = json.loads((moving_root / "train.json").read_text(encoding="utf-8"))
    frame_rows = [row for row in train if "image" in row]
    assert len(frame_rows) == sum("video" in row for row in train)
    for row in frame_rows:
        x, y = centre_x_y(Image.open(moving_root / "video" / row["image"]).convert("RGB"))
        answer = halves.get(row["conversations"][1]["value"], row["conversations"][1]["value"])
        horizontal = answer in ("left", "right")
        assert answer == (("left" if x < 32 else "right") if horizontal else ("top" if y < 32 else "bottom"))
        question = row["conversations"][0]["value"]
        assert (
            ("left or" in question or "左边还是" in question)
            if horizontal
            else ("top or" in question or "上边还是" in question)
        )


def test_moving_shapes_builder_reads_its_clips_through_the_video_path(moving_root, tmp_path):
    root = shutil.copytree(moving_root, tmp_path / "moving_shapes")
    user = OmegaConf.create(
        {
            "generator": {"num_train": 12, "num_val": 4, "num_frames": 8, "image_size": 64, "seed": 0},
            "build_info": {
                "annotations": {
                    "train": {"storage": str(root / "train.json")},
                    "val": {"storage": str(root / "val_reversed.json")},
                },
                "images": {"storage": str(root / "video")},
            },
        }
    )
    cfg = build_dataset_config("moving_shapes", user)
    splits = registry.get_builder_class("moving_shapes")(cfg).build_datasets()
    sample = splits["val"][0]
    assert len(sample["image"]) == 4 and sample["image"][0].shape == (3, 64, 64)
    assert sample["conversations"][0]["value"].startswith("<ImageHere>" * 4 + "\n")
    assert sample["meta"] == {"qtype": "direction", "lang": sample["meta"]["lang"]}
