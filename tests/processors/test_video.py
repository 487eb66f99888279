"""lavis/processors/video.py: uniform frame sampling and PyAV decoding of real (test-written) MP4s."""

import numpy as np
import pytest
from PIL import Image

from lavis.datasets.synthetic.moving_shapes import write_video
from lavis.processors.video import VideoError, frame_indices, read_frames

#: frame k is a flat colour with red = 20 + 25 k, so a decoded frame tells which one it is
REDS = [20 + 25 * k for k in range(8)]


@pytest.fixture(scope="module")
def numbered_video(tmp_path_factory):
    path = tmp_path_factory.mktemp("video") / "numbered.mp4"
    write_video(path, [Image.new("RGB", (32, 32), (red, 100, 100)) for red in REDS])
    return path


def frame_number(frame):
    red = np.asarray(frame)[..., 0].mean()
    return int(np.argmin([abs(red - r) for r in REDS]))


def test_frame_indices_take_the_middle_of_equal_segments():
    assert frame_indices(8, 4) == [1, 3, 5, 7]
    assert frame_indices(100, 4) == [12, 37, 62, 87]
    assert frame_indices(10, 1) == [5]
    assert frame_indices(3, 8) == [0, 1, 2]  # fewer frames than asked: all of them


def test_read_frames_returns_the_sampled_frames_in_order(numbered_video):
    frames = read_frames(str(numbered_video), 4)
    assert [f.size for f in frames] == [(32, 32)] * 4 and all(f.mode == "RGB" for f in frames)
    assert [frame_number(f) for f in frames] == [1, 3, 5, 7]
    assert [frame_number(f) for f in read_frames(str(numbered_video), 20)] == list(range(8))


def test_unreadable_videos_raise_one_line_naming_the_file(tmp_path):
    with pytest.raises(VideoError, match=r"^.*missing\.mp4: cannot decode \(.*No such file"):
        read_frames(str(tmp_path / "missing.mp4"), 4)
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(200))
    with pytest.raises(VideoError, match=r"corrupt\.mp4: "):
        read_frames(str(corrupt), 4)
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(VideoError, match=r"empty\.mp4: "):
        read_frames(str(empty), 4)
