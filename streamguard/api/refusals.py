"""Why the API refuses a request: one line for the client, a status, a reason for metrics.

Bad input is always a 4xx that names the problem, never a 5xx: only a bug (counted in
``streamguard_internal_errors_total``) or a list not loaded yet (503) is the server's.
"""

from streamguard.errors import MediaTooLarge, SourceError, VideoTooLong

REASONS = (
    "unauthorized",
    "malformed",
    "too_large",
    "picture_too_large",
    "video_too_long",
    "unsupported_media",
    "undecodable",
    "timeout",
    "not_ready",
    "busy",
)


class Refusal(Exception):
    """A request the API will not answer with a verdict."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        assert reason in REASONS
        self.status = status
        self.reason = reason
        self.message = message


def malformed(message: str) -> Refusal:
    return Refusal(400, "malformed", message)


def media_refusal(exc: SourceError) -> Refusal:
    """The refusal of an upload PyAV or PIL could not read, or would not (too large)."""
    if isinstance(exc, VideoTooLong):
        return Refusal(413, "video_too_long", str(exc))
    if isinstance(exc, MediaTooLarge):  # a picture, or a video's frames
        return Refusal(413, "picture_too_large", str(exc))
    return Refusal(422, "undecodable", str(exc))
