"""The two PyAV decoders a picker drives (picking.Decoder), on one video stream.

- Keyframes are decoded on their own by the stream's own codec context, with
  ``skip_frame=NONKEY`` and without the loop filter: each keyframe is hashed and never
  used as a reference, so deblocking buys nothing (~15% of the decode; PDQ moves by
  at most 2 bits, docs/hashing.md).
- The chain (a GOP decoded from its keyframe, in guard and interval modes) has a codec
  context of its own, opened only when first needed. It keeps the loop filter: its
  errors would build up through the references (measured, docs/sampling.md: PDQ drifted
  by a mean of 10 and up to 22 bits by the end of a 2 s GOP without it). In guard mode
  it skips non-reference frames (``NONREF``): nothing decodes from them, and a sample
  a frame or two away shows the same picture (-27% of the chain's cost).

Frames larger than MAX_SIDE on a side are left out and counted, never hashed: one
such frame must cost that frame, not the broadcast (docs/sampling.md).

FFmpeg attaches a container's display matrix (orientation.py) to the frames of the
stream's own codec context only; the chain's frames get the one learned from it.
"""

from fractions import Fraction
from typing import Literal

import av
import numpy as np
from av.video.stream import VideoStream

from streamguard.hashing import MAX_SIDE
from streamguard.ingest.orientation import display_matrix
from streamguard.ingest.source import VideoPacket, ffmpeg_reason
from streamguard.ingest.stats import SampleStats
from streamguard.observability import metrics

ChainSkip = Literal["DEFAULT", "NONREF"]  # the chain's skip_frame: every frame, or references


class StreamDecoders:
    """Decodes one stream's packets; decoder errors are counted and cost those packets
    (in ``stats``, and if ``metered`` in the service's Prometheus metrics). ``time_base``
    is the stream's."""

    def __init__(
        self,
        stream: VideoStream,
        time_base: Fraction,
        stats: SampleStats,
        *,
        chain_skip: ChainSkip,
        metered: bool = True,
    ) -> None:
        key = stream.codec_context
        key.thread_type = "SLICE"  # frame threads would hold keyframes back by a GOP each
        key.thread_count = 1  # parallelism comes from running many streams at once
        key.skip_frame = "NONKEY"
        key.options = {**key.options, "skip_loop_filter": "all"}
        self._key = key
        self._options = {
            name: value for name, value in key.options.items() if name != "skip_loop_filter"
        }
        self._chain: av.VideoCodecContext | None = None
        self._chain_skip = chain_skip
        self._stats = stats
        self._metered = metered
        self._tb_num = time_base.numerator
        self._tb_den = time_base.denominator
        self._matrix: np.ndarray | None = None  # the stream's display matrix
        self._matrix_known = False

    def alone(self, packet: VideoPacket) -> list[av.VideoFrame]:
        """Decode a keyframe and empty the decoder at once: otherwise the frame would wait
        behind B-frame reordering for the next keyframes (seconds, in a live stream)."""
        frames = self._decode(self._key, packet)
        frames += self._decode(self._key, None)
        self._key.flush_buffers()
        if not frames and max(self._key.width, self._key.height) > MAX_SIDE:
            # The decoder refuses pictures above max_pixels without an error.
            self._refused(self._key.width, self._key.height)
        if frames and not self._matrix_known:
            self._matrix, self._matrix_known = display_matrix(frames[0]), True
        return self._watchable(frames)

    def feed(self, packet: VideoPacket) -> list[av.VideoFrame]:
        if not self._matrix_known and packet.is_keyframe:
            self.alone(packet)  # once: learn the display matrix
        return self._watchable(self._decode(self._chain_context(), packet))

    def matrix(self, frame: av.VideoFrame) -> np.ndarray | None:
        """The display matrix ``frame`` is shown by: its own, else the stream's."""
        own = display_matrix(frame)
        return own if own is not None else self._matrix

    def drain(self) -> list[av.VideoFrame]:
        if self._chain is None:
            return []
        frames = self._decode(self._chain, None)
        self._chain.flush_buffers()
        return self._watchable(frames)

    def pts_s(self, frame: av.VideoFrame) -> float | None:
        # Integer maths, one rounding: Fractions per frame cost 10% of a scan's CPU.
        return None if frame.pts is None else frame.pts * self._tb_num / self._tb_den

    def _chain_context(self) -> av.VideoCodecContext:
        if self._chain is None:
            # PyAV cannot copy a stream's codec parameters: the ones decoders read.
            key = self._key
            chain = av.CodecContext.create(key.codec.name, "r")
            assert isinstance(chain, av.VideoCodecContext)  # a video codec's context
            chain.extradata = key.extradata
            chain.width, chain.height = key.width, key.height
            if key.pix_fmt is not None:
                chain.pix_fmt = key.pix_fmt
            chain.codec_tag, chain.bits_per_coded_sample = key.codec_tag, key.bits_per_coded_sample
            chain.thread_type, chain.thread_count = "SLICE", 1
            chain.skip_frame = self._chain_skip
            chain.options = dict(self._options)
            self._chain = chain
        return self._chain

    def _decode(
        self, context: av.VideoCodecContext, packet: VideoPacket | None
    ) -> list[av.VideoFrame]:
        try:
            frames = context.decode(packet)
        except av.FFmpegError as exc:
            if max(context.width, context.height) > MAX_SIDE:  # refused for max_pixels
                self._refused(context.width, context.height)
                return []
            self._stats.decode_errors += 1
            self._stats.last_error = ffmpeg_reason(exc)
            self._stats.unwatchable_reason = "decode_error"
            if self._metered:
                metrics.DECODE_ERRORS.inc()
            return []
        self._stats.frames_decoded += len(frames)
        if self._metered:
            metrics.FRAMES_DECODED.inc(len(frames))
        return frames

    def _watchable(self, frames: list[av.VideoFrame]) -> list[av.VideoFrame]:
        kept = []
        for frame in frames:
            if max(frame.width, frame.height) > MAX_SIDE:
                self._refused(frame.width, frame.height)
            else:
                kept.append(frame)
        return kept

    def _refused(self, width: int, height: int) -> None:
        self._stats.too_large += 1
        self._stats.unwatchable_reason = "too_large"
        self._stats.last_error = f"a frame is {width}x{height}, larger than {MAX_SIDE} px on a side"
        if self._metered:
            metrics.SAMPLES_SKIPPED.labels("too_large").inc()
