"""Read a recorded file as if it were live, and publish it as live RTMP streams.

:func:`paced` releases packets no faster than their timestamps. :func:`publish` uses it to
send a file to RTMP servers in real time, stream copy (no re-encode), for ``streamguard
replay``, tests and latency benchmarks.
"""

import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import av
from av.container import InputContainer

from streamguard.errors import SourceError
from streamguard.infra.redaction import redact
from streamguard.ingest.source import VideoPacket, ffmpeg_reason, open_source


def paced(
    packets: Iterable[VideoPacket],
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], object] = time.sleep,
) -> Iterator[VideoPacket]:
    """Yield each packet once the wall clock has caught up with its decode timestamp."""
    origin: tuple[float, float] | None = None
    for packet in packets:
        timestamp = packet.dts if packet.dts is not None else packet.pts
        if timestamp is not None and packet.time_base is not None:
            media_s = float(timestamp * packet.time_base)
            if origin is None:
                origin = (clock(), media_s)
            delay = origin[0] + (media_s - origin[1]) - clock()
            if delay > 0:
                sleep(delay)
        yield packet


def stalling(
    packets: Iterable[VideoPacket],
    stall_s: Callable[[VideoPacket], float],
    *,
    sleep: Callable[[float], object] = time.sleep,
) -> Iterator[VideoPacket]:
    """A publisher that pauses: before each packet, wait ``stall_s(packet)`` seconds. After
    ``paced``, the packets held back meanwhile then go out at once, as a burst."""
    for packet in packets:
        if (pause_s := stall_s(packet)) > 0:
            sleep(pause_s)
        yield packet


def copy_urls(url: str, copies: int) -> list[str]:
    """The URL of each copy: ``{n}`` replaced by the copy number (from 0), or else, for more
    than one copy, ``-<n>`` appended to the last path segment (the stream name)."""
    if copies < 1:
        raise ValueError(f"copies must be at least 1, not {copies}")
    if "{n}" in url:
        return [url.replace("{n}", str(n)) for n in range(copies)]
    if copies == 1:
        return [url]
    parts = urlsplit(url)
    if parts.path.endswith("/") or not parts.path:
        raise ValueError(f"{redact(url)}: no stream name to number the copies")
    return [urlunsplit(parts._replace(path=f"{parts.path}-{n}")) for n in range(copies)]


def publish(
    source: str | Path,
    urls: list[str],
    *,
    loop: bool = False,
    stop: threading.Event | None = None,
    keyframe_log: Path | None = None,
    stall_s: Callable[[VideoPacket], float] | None = None,
) -> list[SourceError]:
    """Publish the first video stream of ``source`` to every URL at once, in real time, and
    return each copy's error (audio is not sent: streamguard only looks at video).

    ``stall_s`` makes a publisher that pauses (``stalling``).

    One thread per URL, each with its own input and output, so a failing copy does not stop
    the others. Blocks until every copy has reached the end of the file (never with ``loop``)
    or ``stop`` is set; Ctrl-C sets ``stop`` and waits for the copies to close cleanly.
    With ``keyframe_log``, one JSON line is appended per video keyframe sent.
    """
    if stop is None:
        stop = threading.Event()
    outcomes: list[Exception | None] = [None] * len(urls)
    log = _KeyframeLog(keyframe_log) if keyframe_log is not None else None

    def run(copy: int) -> None:
        try:
            _publish_copy(
                str(source), urls[copy], copy, loop=loop, stop=stop, log=log, stall_s=stall_s
            )
        except Exception as exc:
            outcomes[copy] = exc

    threads = [
        threading.Thread(target=run, args=(copy,), name=f"replay-{copy}")
        for copy in range(len(urls))
    ]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    except BaseException:
        stop.set()
        for thread in threads:
            if thread.is_alive():
                thread.join()
        raise
    finally:
        if log is not None:
            log.close()
    for outcome in outcomes:
        if outcome is not None and not isinstance(outcome, SourceError):
            raise outcome
    return [outcome for outcome in outcomes if isinstance(outcome, SourceError)]


class _KeyframeLog:
    """JSON lines shared by the copies' threads."""

    def __init__(self, path: Path) -> None:
        self._file = path.open("a", encoding="utf-8")
        self._lock = threading.Lock()

    def write(self, record: dict[str, object]) -> None:
        line = json.dumps(record) + "\n"
        with self._lock:
            self._file.write(line)
            self._file.flush()

    def close(self) -> None:
        self._file.close()


def _publish_copy(
    source: str,
    url: str,
    copy: int,
    *,
    loop: bool,
    stop: threading.Event,
    log: _KeyframeLog | None,
    stall_s: Callable[[VideoPacket], float] | None,
) -> None:
    shown = redact(url)
    with open_source(source) as container:
        if not container.streams.video:
            raise SourceError(f"{redact(source)}: no video stream")
        # Live output cannot seek back to fill in duration and file size at the end.
        output = av.open(url, "w", format="flv", options={"flvflags": "no_duration_filesize"})
        try:
            stream = output.add_stream_from_template(container.streams.video[0])
            try:
                # Connect and send the header before pacing starts. PyAV holds the GIL during
                # the handshake (~0.18 s on loopback), so copies connect one after another.
                output.start_encoding()
            except av.FFmpegError as exc:
                raise SourceError(f"{shown}: cannot publish ({ffmpeg_reason(exc)})") from None
            packets = paced(_timeline(container, source, loop), sleep=stop.wait)
            if stall_s is not None:
                packets = stalling(packets, stall_s, sleep=stop.wait)
            for packet in packets:
                if stop.is_set():
                    break
                keyframe = packet.is_keyframe
                packet.stream = stream
                try:
                    output.mux(packet)
                except av.FFmpegError as exc:
                    reason = ffmpeg_reason(exc)
                    raise SourceError(f"{shown}: publishing stopped ({reason})") from None
                if keyframe and log is not None and packet.pts is not None:
                    # mux() rebased the packet to the FLV time base (ms): the pts as sent.
                    pts_s = float(packet.pts * packet.time_base)
                    log.write({"url": shown, "copy": copy, "pts_s": pts_s, "sent_at": time.time()})
        finally:
            # Ends the stream; after a failed write the trailer cannot be sent either.
            with contextlib.suppress(av.FFmpegError):
                output.close()


def _timeline(container: InputContainer, source: str, loop: bool) -> Iterator[VideoPacket]:
    """The video packets of ``container``; with ``loop``, again and again from the start,
    shifted by the file's duration each time so that timestamps keep increasing."""
    stream = container.streams.video[0]
    offset = 0  # in stream.time_base
    while True:
        start: int | None = None  # the first packet's dts
        end = 0
        try:
            for packet in container.demux(stream):
                if packet.dts is None:  # the demuxer's end-of-stream flush packet
                    continue
                if start is None:
                    start = packet.dts
                # Without packet durations a loop ends one tick, not one frame, later.
                end = packet.dts + (packet.duration or 1)
                packet.dts += offset
                if packet.pts is not None:
                    packet.pts += offset
                yield packet
            if not loop or start is None:
                return
            container.seek(0)
        except av.FFmpegError as exc:
            raise SourceError(f"{redact(source)}: cannot read ({ffmpeg_reason(exc)})") from None
        offset += end - start
