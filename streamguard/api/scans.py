"""Uploads scanned off the event loop: at most one per scan thread at a time, each within
its request's deadline, so that hash lookups keep their latency while videos decode.

PyAV's decoding and the PDQ C++ release the GIL, so threads of one process share the
cores; a request that waits for a thread past its deadline is refused (503, busy), one
whose scan runs past it is stopped at the next frame (408).
"""

import asyncio
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

import av

from streamguard.api.refusals import Refusal, media_refusal
from streamguard.api.uploads import Upload
from streamguard.config.model import ApiSettings
from streamguard.config.sampling import Sampling
from streamguard.detect.upload import UploadMatcher, Verdict
from streamguard.errors import MediaTooLarge, SourceError
from streamguard.hashing.picture import AnimatedPicture, Picture, read_picture
from streamguard.ingest.sampler import Frame
from streamguard.ingest.source import ffmpeg_reason
from streamguard.ingest.stats import SampleStats
from streamguard.ingest.upload import upload_frames

Result = TypeVar("Result")
UPLOAD_NAME = "upload"  # how errors name the upload: never a client's file name
# An animated picture's frames are few and small, and any one may be the one that matters:
# every frame is hashed (GIF times frames in hundredths of a second).
EVERY_FRAME = Sampling("interval", 0.001)


@dataclass(frozen=True, slots=True)
class Media:
    """What was scanned: the answer's ``media``."""

    kind: str  # picture, video
    width: int
    height: int
    duration_s: float | None = None  # video: stream time from the first sample to the last
    frames_sampled: int = 1

    def to_json(self) -> dict[str, Any]:
        media: dict[str, Any] = {"kind": self.kind, "width": self.width, "height": self.height}
        if self.kind == "video":
            media["duration_s"] = round(self.duration_s or 0.0, 3)
            media["frames_sampled"] = self.frames_sampled
        return media


def read_still(upload: Upload, max_pixels: int) -> Picture | None:
    """The upload as a still picture, or None if it is to be read as a video: declared one,
    or of no declared type and not a picture. AnimatedPicture for an animated picture (a
    video too, every frame of it); Refusal for a declared picture that cannot be read, and
    for any picture over the size limits."""
    if upload.kind == "video":
        return None
    try:
        return read_picture(upload.data, UPLOAD_NAME, max_pixels)
    except AnimatedPicture:
        raise
    except SourceError as exc:
        if upload.kind == "picture" or isinstance(exc, MediaTooLarge):
            raise media_refusal(exc) from None
        return None


class Scans:
    def __init__(
        self, matcher: UploadMatcher, settings: ApiSettings, sampling: Sampling, threads: int
    ) -> None:
        self.matcher = matcher
        self.settings = settings
        self.sampling = sampling
        self.threads = threads
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="scan")
        self._slots = asyncio.Semaphore(threads)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def upload(self, upload: Upload, deadline: float) -> tuple[Verdict, Media]:
        """The verdict on an upload, scanned by ``deadline`` (``time.monotonic``)."""
        return await self.run(partial(self._scan, upload, deadline), deadline)

    async def run(self, work: Callable[[], Result], deadline: float) -> Result:
        """``work()`` on a scan thread, if one is free by ``deadline``."""
        try:
            async with asyncio.timeout(max(deadline - time.monotonic(), 0)):
                await self._slots.acquire()
        except TimeoutError:
            raise Refusal(503, "busy", "every scan thread is busy; retry later") from None
        try:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._pool, work)
        finally:
            self._slots.release()

    def _scan(self, upload: Upload, deadline: float) -> tuple[Verdict, Media]:
        try:
            picture = read_still(upload, self.settings.max_picture_pixels)
        except AnimatedPicture:
            return self._scan_video(upload.data, deadline, EVERY_FRAME)
        if picture is not None:
            height, width = picture.shape
            return self.matcher.picture(picture, UPLOAD_NAME), Media("picture", width, height)
        if upload.kind is None:
            return self._scan_unknown(upload.data, deadline)
        return self._scan_video(upload.data, deadline, self.sampling)

    def _scan_unknown(self, data: bytes, deadline: float) -> tuple[Verdict, Media]:
        """An upload of no declared type that is not a picture: a video, or neither."""
        try:
            return self._scan_video(data, deadline, self.sampling)
        except Refusal as refusal:
            if refusal.reason != "undecodable":
                raise
            message = f"{UPLOAD_NAME}: neither a picture nor a video streamguard reads"
            raise Refusal(422, "undecodable", message) from None

    def _scan_video(
        self, data: bytes, deadline: float, sampling: Sampling
    ) -> tuple[Verdict, Media]:
        stats = SampleStats()
        seen = _Seen(deadline, self.settings.request_timeout_s)
        try:
            frames = upload_frames(
                data,
                UPLOAD_NAME,
                sampling,
                max_duration_s=self.settings.max_video_s,
                stats=stats,
            )
            verdict = self.matcher.frames(seen.frames(frames))
        except SourceError as exc:
            raise media_refusal(exc) from None
        except av.FFmpegError as exc:
            message = f"{UPLOAD_NAME}: not a video streamguard reads ({ffmpeg_reason(exc)})"
            raise Refusal(422, "undecodable", message) from None
        return verdict, Media("video", seen.width, seen.height, seen.span_s, verdict.samples)


class _Seen:
    """The frames of a video as they pass: their size and span, and the deadline."""

    def __init__(self, deadline: float, timeout_s: float) -> None:
        self.deadline = deadline
        self.timeout_s = timeout_s
        self.width = self.height = 0
        self.first_s: float | None = None
        self.span_s = 0.0

    def frames(self, frames: Iterable[Frame]) -> Iterator[Frame]:
        for frame in frames:
            if time.monotonic() > self.deadline:
                raise Refusal(
                    408, "timeout", f"{UPLOAD_NAME}: not scanned within {self.timeout_s:g} s"
                )
            if self.first_s is None:
                self.first_s, self.width, self.height = frame.pts_s, frame.width, frame.height
            self.span_s = max(self.span_s, frame.pts_s - self.first_s)
            yield frame
