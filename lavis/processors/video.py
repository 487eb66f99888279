"""Video files -> a few RGB frames, for the image side (processors layer).

A dataset row's video becomes `max_frames` frames taken uniformly over its length; each frame
then goes through the dataset's image processor like any image, and takes one image's slots in
the prompt (`lavis/datasets/datasets/instruction_dataset.py` expands the row's `<video>`).
Decoding uses PyAV (the pinned `av` wheel brings its own FFmpeg; no system package), in
whichever process asks, so with `run.num_workers > 0` in the DataLoader's workers.  A file that
cannot be opened or decoded, or that holds no video frame, raises VideoError naming the file.
"""

import av

from lavis.common.errors import UserError


class VideoError(UserError, ValueError):
    """A video file that cannot be read (missing, corrupt, no video stream, no frame)."""


def frame_indices(total, count):
    """`count` frame numbers out of `total`, spread evenly: the middle of each of `count` equal
    segments (all frames when the video has fewer), in order."""
    count = min(count, total)
    return [int((k + 0.5) * total / count) for k in range(count)]


def _frame_count(path):
    """Frames in the first video stream: the container's count, else counted from the packets
    (demuxing only, no decoding)."""
    with av.open(path) as container:
        if not container.streams.video:
            raise VideoError(f"{path}: no video stream")
        stream = container.streams.video[0]
        if stream.frames:
            return stream.frames
        return sum(1 for packet in container.demux(stream) if packet.size)


def read_frames(path, max_frames):
    """Up to `max_frames` PIL RGB frames of the video at `path`, uniformly sampled, in order."""
    try:
        total = _frame_count(path)
        if total == 0:
            raise VideoError(f"{path}: the video has no frames")
        wanted = frame_indices(total, max_frames)
        frames, next_wanted = [], 0
        with av.open(path) as container:
            for number, frame in enumerate(container.decode(video=0)):
                while next_wanted < len(wanted) and wanted[next_wanted] == number:
                    frames.append(frame.to_image())
                    next_wanted += 1
                if next_wanted == len(wanted):
                    break
    except av.FFmpegError as err:
        raise VideoError(f"{path}: cannot decode ({err})") from None
    if not frames:
        raise VideoError(f"{path}: no frame could be decoded")
    return frames
