"""Errors that reach the user as one line: what input, what problem."""

from typing import Literal

UnwatchableCause = Literal["too_large", "decode_error", "no_keyframe"]
"""Why a stream is unwatchable: the event's ``unwatchable.cause`` (event.schema.json) and
streamguard_unwatchable_total's ``reason``."""


class StreamguardError(Exception):
    """Base class for errors the CLI reports without a traceback."""


class SourceError(StreamguardError):
    """A stream or file could not be opened, read or decoded.

    ``reason`` is a short fixed word for metrics (``streamguard_reconnects_total``).
    """

    reason = "error"

    def __init__(self, message: str, reason: str | None = None) -> None:
        super().__init__(message)
        if reason is not None:
            self.reason = reason


class BlocklistFormatError(StreamguardError):
    """A blocklist file is malformed; the message names the file and line."""


class MediaTooLarge(SourceError):
    """A picture or video beyond a size limit (pixels, duration), refused before or while
    decoding it, never decoded whole."""

    reason = "too_large"


class VideoTooLong(MediaTooLarge):
    """A video that declares or reaches more than the longest duration scanned."""


class SourceRefused(SourceError):
    """A source that retrying cannot fix: a disabled URL scheme, a malformed URL."""

    reason = "refused"


class SourceUnwatchable(SourceError):
    """A stream that sends what streamguard cannot look at: pictures above the size limit,
    undecodable packets, no keyframe. Whoever publishes chooses this, so it is retried
    (it may change its mind) and reported as a decision of its own (docs/sampling.md)."""

    reason = "unwatchable"

    def __init__(self, message: str, cause: UnwatchableCause, after_s: float = 0.0) -> None:
        super().__init__(message)
        self.cause = cause
        self.after_s = after_s  # how long the stream had been unwatchable


class SourceNotLive(SourceError):
    """The server has no such stream: nothing is published at the URL now.

    nginx-rtmp (``idle_streams off``) answers a play of an unpublished name with an
    error status, which FFmpeg reports as EPERM; an HLS server answers 404.
    """

    reason = "open_failed"


class SourceOpenTimeout(SourceError):
    """Opening took longer than the open timeout: nothing, or no keyframe yet, came back."""

    reason = "open_failed"


class SourceEnded(SourceError):
    """The server closed the stream after sending it: the publisher has most likely stopped."""

    reason = "ended"
