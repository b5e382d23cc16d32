"""Video files uploaded to ``streamguard api``: read from memory, never from a path, by the
demuxers of ordinary video files only, and sampled as ``scan`` samples a file.

An upload is the uploader's choice of bytes. A playlist (HLS, DASH), a concat list or an
image sequence would make FFmpeg open the files or URLs it names: those demuxers are not
on the whitelist, and no protocol is, so nothing an upload names is ever opened. Its
declared duration is checked before decoding and its frames' times while sampling, so a
file that lies in its header is stopped at the limit all the same.
"""

import io
import random
from collections.abc import Iterator

import av
from av.container import InputContainer

from streamguard.config.sampling import Sampling
from streamguard.errors import SourceError, VideoTooLong
from streamguard.ingest.sampler import Frame, sample_frames
from streamguard.ingest.source import ffmpeg_reason, video_stream
from streamguard.ingest.stats import SampleStats

UPLOAD_DEMUXERS = (
    "mov",  # MP4, MOV, 3GP, M4V
    "matroska",  # MKV, WebM
    "flv",  # what nginx-rtmp records
    "mpegts",
    "mpeg",
    "avi",
    "asf",
    "ogg",
    "ivf",
    "h264",
    "hevc",
    "m4v",
    "gif",
    "apng",
)
_CONTAINER_OPTIONS = {
    "format_whitelist": ",".join(UPLOAD_DEMUXERS),
    "protocol_whitelist": "none",  # no protocol has this name: nothing else is opened
    "codec_whitelist": "none",  # no decoder while probing (see ingest/source.py)
}


def open_upload(data: bytes, name: str) -> InputContainer:
    """Open an uploaded video; SourceError (one line, naming ``name``) if FFmpeg cannot,
    or if it is not of a format on the whitelist."""
    try:
        return av.open(io.BytesIO(data), "r", container_options=_CONTAINER_OPTIONS)
    except av.FFmpegError as exc:
        raise SourceError(f"{name}: not a video streamguard reads ({ffmpeg_reason(exc)})") from None


def upload_frames(
    data: bytes,
    name: str,
    sampling: Sampling,
    *,
    max_duration_s: float,
    stats: SampleStats,
    rng: random.Random | None = None,
) -> Iterator[Frame]:
    """The sampled frames of an uploaded video, as ``scan`` samples a file, counted in
    ``stats``. MediaTooLarge if it declares or reaches more than ``max_duration_s``;
    SourceError where ``scan`` says a file cannot be called clean (ended early, no
    decodable frame)."""
    with open_upload(data, name) as container:
        stream = video_stream(container, name)
        declared_s = container.duration / 1_000_000 if container.duration else None
        if declared_s is not None and declared_s > max_duration_s:
            raise VideoTooLong(
                f"{name}: video is {declared_s:.0f} s long, longer than {max_duration_s:g} s"
            )
        first_s: float | None = None
        frames = sample_frames(
            container, stream, name, sampling, stats=stats, rng=rng, metered=False
        )
        for frame in frames:
            first_s = frame.pts_s if first_s is None else first_s
            if frame.pts_s - first_s > max_duration_s:
                raise VideoTooLong(f"{name}: video runs longer than {max_duration_s:g} s")
            yield frame
        stats.check_complete(name, declared_s, None)
