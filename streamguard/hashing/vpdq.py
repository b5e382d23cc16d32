"""vPDQ of a video file: the PDQ hash of one frame per second, as Meta's vpdq computes it.

vpdq 0.2.5 (``cpp/vpdq/cpp/hashing/filehasher.cpp``, ``hasher.h``) decodes every frame and
hashes those whose decoded index N has ``N % step == 0``, ``step = int(seconds_per_hash
* fps)`` (truncated: 29.97 fps takes every 29th frame), fps being the stream's average
frame rate (its real base rate if none). The frame's time is ``N / fps`` in 32-bit
floats, not its timestamp. Each hashed frame is converted to RGB24 at full size by
swscale and hashed by the PDQ reference code (``pdqHash256FromFloatLuma``, no
downscaling first). Here PyAV decodes and converts, and ``pdq_hash_rgb`` (the same
reference code, bit for bit ``pdqhash.compute``) hashes: on the five sample clips and
seven made ones (24-60 fps, 29.97 fps, 318x178 to 1280x720, 4:2:0, 4:4:4 at 321x241,
MJPEG, B-frames) every frame hash, quality, index and time equalled
``vpdq.computeHash``'s (BENCHMARKS.md).
"""

import math
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
from av.container import InputContainer

from streamguard.errors import SourceError, VideoTooLong
from streamguard.hashing import MAX_SIDE
from streamguard.hashing.pdq import pdq_hash_rgb
from streamguard.hashing.vpdq_signal import VpdqFrame

SECONDS_PER_HASH = 1.0  # vpdq's and ThreatExchange's default


@dataclass(frozen=True, slots=True)
class VideoHash:
    """A video's vPDQ frames, and what it took to make them."""

    frames: list[VpdqFrame]
    frame_numbers: list[int]  # the decoded index of each of ``frames``
    decoded: int  # frames decoded
    fps: float


def frame_step(fps: float, seconds_per_hash: float = SECONDS_PER_HASH) -> int:
    """Every how many decoded frames one is hashed (vpdq's ``m_frameMod``)."""
    return int(seconds_per_hash * fps) or 1


def frame_time_s(number: int, fps: float) -> float:
    """A hashed frame's time as vpdq gives it: ``float(N) / float(fps)`` in 32 bits."""
    return float(np.float32(number) / np.float32(fps))


def hash_video(path: Path, seconds_per_hash: float = SECONDS_PER_HASH) -> VideoHash:
    """The vPDQ frames of the video file ``path``; SourceError if it cannot be read."""
    if not path.is_file():
        raise SourceError(f"{path}: no such file", "open_failed")
    try:
        container = av.open(str(path))
    except av.FFmpegError as exc:
        raise SourceError(f"{path}: cannot decode ({exc.strerror or type(exc).__name__})") from None
    with container:
        return hash_container(container, str(path), seconds_per_hash)


def hash_container(
    container: InputContainer,
    name: str,
    seconds_per_hash: float = SECONDS_PER_HASH,
    max_duration_s: float = math.inf,
) -> VideoHash:
    """The vPDQ frames of an open video (``name`` in errors); VideoTooLong once its
    frames pass ``max_duration_s``, counted as vpdq counts time (frames / fps)."""
    try:
        if not container.streams.video:
            raise SourceError(f"{name}: no video stream", "no_video")
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate
        if not rate:
            raise SourceError(f"{name}: the video's frame rate is unknown", "no_video")
        stream.codec_context.options = {"max_pixels": str(MAX_SIDE * MAX_SIDE)}
        stream.thread_type = "AUTO"
        fps = float(rate)
        step = frame_step(fps, seconds_per_hash)
        frames: list[VpdqFrame] = []
        numbers: list[int] = []
        decoded = 0
        for frame in container.decode(stream):
            if decoded % step == 0:
                time_s = frame_time_s(decoded, fps)
                if time_s > max_duration_s:
                    raise VideoTooLong(f"{name}: video runs longer than {max_duration_s:g} s")
                digest, quality = pdq_hash_rgb(frame.to_ndarray(format="rgb24"))
                frames.append(VpdqFrame(digest, quality, time_s))
                numbers.append(decoded)
            decoded += 1
    except av.FFmpegError as exc:
        raise SourceError(f"{name}: cannot decode ({exc.strerror or type(exc).__name__})") from None
    if not frames:
        raise SourceError(f"{name}: no decodable video frames", "no_video")
    return VideoHash(frames, numbers, decoded, fps)
