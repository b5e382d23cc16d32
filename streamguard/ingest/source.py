"""Open a file or stream URL with PyAV, under the URL policy and size limits."""

import errno
import socket
import time
from typing import TYPE_CHECKING, TypeAlias
from urllib.parse import urlsplit

import av
from av.container import InputContainer
from av.video.stream import VideoStream

from streamguard.config.model import HLS_HOLD_RELOADS, OPEN_TIMEOUT_S
from streamguard.errors import SourceError, SourceNotLive, SourceOpenTimeout
from streamguard.hashing import MAX_SIDE
from streamguard.infra.redaction import redact
from streamguard.ingest.urls import DEFAULT_SCHEMES, check_allowed, local_path, scheme_of

READ_TIMEOUT_S = 10.0
if TYPE_CHECKING:
    VideoPacket: TypeAlias = av.Packet[VideoStream]  # a packet of the stream it came from
else:
    VideoPacket = av.Packet  # PyAV's Packet takes no [] at run time


def ffmpeg_reason(exc: av.FFmpegError) -> str:
    """FFmpeg's reason without the file name it appends (which may hold a stream key)."""
    return exc.strerror or exc.__class__.__name__


def open_source(
    source: str,
    *,
    allowed_schemes: frozenset[str] = DEFAULT_SCHEMES,
    open_timeout_s: float = OPEN_TIMEOUT_S,
    read_timeout_s: float = READ_TIMEOUT_S,
    hls_hold_reloads: int = HLS_HOLD_RELOADS,
) -> InputContainer:
    """Open ``source`` for reading, or raise :class:`SourceError` with a one-line reason.

    Network reads that stall for ``read_timeout_s`` fail instead of hanging, and an
    HLS playlist that stops changing ends after ``hls_hold_reloads`` reloads
    (FFmpeg's default waits for 1000).
    """
    container_options = {
        "protocol_whitelist": check_allowed(source, allowed_schemes),
        # No decoder while probing: FFmpeg would decode the first pictures at whatever
        # size the stream declares, before video_stream() can refuse it (an SPS claiming
        # 16000x16000 took 2.3 GB), and the probing decoders of streams found during
        # the probe (FLV, so RTMP) take no options such as max_pixels. The size comes
        # from the codec parser or the container; frames are decoded by sample_frames.
        "codec_whitelist": "none",
    }
    path = local_path(source)
    if path is not None:
        if not path.is_file():
            raise SourceError(f"{source}: no such file", "open_failed")
        target, timeout = str(path), None
    else:
        container_options |= _network_options(source, read_timeout_s, hls_hold_reloads)
        # PyAV's own timeout checks take the GIL on every FFmpeg I/O poll; keep them
        # for the open only and let rw_timeout bound reads inside FFmpeg (measured
        # with 40 nginx-rtmp readers: 1.35-1.7 -> 1.2 ms CPU per stream-second).
        target, timeout = source, (open_timeout_s, None)
    started = time.monotonic()
    try:
        return av.open(target, container_options=container_options, timeout=timeout)
    except av.ExitError:  # PyAV's timeout interrupted FFmpeg ("Immediate exit requested")
        raise SourceOpenTimeout(
            f"{redact(source)}: cannot open (timed out after {open_timeout_s:g} s)"
        ) from None
    except av.FFmpegError as exc:
        timeout_s = min(read_timeout_s, open_timeout_s)
        raise _open_failure(exc, source, path is None, started, timeout_s) from None


def _network_options(source: str, read_timeout_s: float, hls_hold_reloads: int) -> dict[str, str]:
    """FFmpeg's options for a stream URL: bounded reads, a short probe, HLS's end."""
    # rw_timeout (microseconds) bounds every network read; FFmpeg's RTMP
    # ``timeout`` would instead make it listen for a publisher.
    options = {"rw_timeout": str(int(read_timeout_s * 1_000_000))}
    # FFmpeg probes a live stream for 5 s before returning from open; half a
    # second is enough to learn the video parameters (measured on nginx-rtmp:
    # open 6.6 s -> 1.5 s, the rest being the wait for a keyframe; HLS 4 s -> 0.02 s).
    options["analyzeduration"] = "500000"
    if scheme_of(source) in ("http", "https"):
        options["m3u8_hold_counters"] = str(hls_hold_reloads)
    return options


def _open_failure(
    exc: av.FFmpegError, source: str, network: bool, started: float, timeout_s: float
) -> SourceError:
    """The SourceError for FFmpeg's failure to open ``source``, which began at ``started``
    (monotonic); ``timeout_s`` is the shorter of the read and open timeouts."""
    # FFmpeg reports a host name that does not resolve only as an I/O error.
    looked_up = network and exc.errno == errno.EIO and _unresolved(source)
    reason = looked_up or ffmpeg_reason(exc)
    message = f"{redact(source)}: cannot open ({reason})"
    if _not_published(exc, source):
        return SourceNotLive(message)
    waited_s = time.monotonic() - started
    if not looked_up and waited_s >= 0.95 * timeout_s:
        # Connected, and nothing came (FFmpeg's RTMP client says EIO for both timeouts).
        message = f"{redact(source)}: cannot open (nothing received for {waited_s:.1f} s)"
        return SourceOpenTimeout(message)
    return SourceError(message, "open_failed")


def _not_published(exc: av.FFmpegError, source: str) -> bool:
    """Whether the server answered that it has no stream at ``source``.

    FFmpeg's RTMP client turns any error status from the server into EPERM.
    """
    if isinstance(exc, av.HTTPNotFoundError):
        return True
    return scheme_of(source).startswith("rtmp") and exc.errno == errno.EPERM


def _unresolved(source: str) -> str:
    """Why the host name of ``source`` does not resolve, or "" if it does."""
    host = urlsplit(source).hostname
    if not host:
        return ""
    try:
        socket.getaddrinfo(host, None)
    except socket.gaierror as exc:
        return f"cannot resolve host '{host}': {exc.strerror}"
    except (OSError, UnicodeError):
        return ""
    return ""


def video_stream(container: InputContainer, source: str) -> VideoStream:
    """The first video stream, its decoder limited to pictures of MAX_SIDE by MAX_SIDE.

    A declared size above the limit is not refused here: the publisher can change it
    at the next keyframe, and one picture must not end the watch of a broadcast. The
    decoder refuses such pictures without allocating them, and the sampler leaves out
    and counts any frame larger than MAX_SIDE on a side (docs/sampling.md).
    """
    if not container.streams.video:
        raise SourceError(f"{redact(source)}: no video stream", "no_video")
    stream = container.streams.video[0]
    stream.codec_context.options = {"max_pixels": str(MAX_SIDE * MAX_SIDE)}
    return stream
