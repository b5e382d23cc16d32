"""Whether a stream still publishes, without decoding a picture: the cheap watch kept
on a stream after its kill (runtime/worker.py, docs/events.md "Kills nobody honours")."""

import time
from dataclasses import dataclass
from enum import StrEnum

import av

from streamguard.errors import SourceError, SourceNotLive, SourceOpenTimeout
from streamguard.ingest.source import open_source, video_stream

LIVE_FOR_S = 2.0  # packets still coming this long after the open: a live broadcast


class Liveness(StrEnum):
    LIVE = "live"
    ENDED = "ended"  # nothing published there, or a stream that stopped coming
    TIMED_OUT = "timed_out"  # the open timed out: perhaps a server waiting for a keyframe
    ERROR = "error"  # could not tell: the server did not answer as expected


@dataclass(frozen=True, slots=True)
class Seen:
    """What one look at the stream found; ``pts_s`` and ``received_at`` of the packet
    that showed it live."""

    liveness: Liveness
    pts_s: float = 0.0
    received_at: float = 0.0
    detail: str = ""


def look(
    url: str,
    *,
    allowed_schemes: frozenset[str],
    open_timeout_s: float,
    read_timeout_s: float,
    hls_hold_reloads: int,
    live_for_s: float = LIVE_FOR_S,
) -> Seen:
    """Open ``url`` and read packets (no decoding) until they have kept coming for
    ``live_for_s``: an RTMP server that has the stream sends it from its last keyframe
    on; a stale HLS playlist's old segments come at once and then nothing."""
    try:
        with open_source(
            url,
            allowed_schemes=allowed_schemes,
            open_timeout_s=open_timeout_s,
            read_timeout_s=read_timeout_s,
            hls_hold_reloads=hls_hold_reloads,
        ) as container:
            stream = video_stream(container, url)
            opened = time.monotonic()
            for packet in container.demux(stream):
                if packet.pts is None or packet.time_base is None:
                    continue
                if time.monotonic() - opened >= live_for_s:
                    return Seen(Liveness.LIVE, float(packet.pts * packet.time_base), time.time())
    except SourceNotLive as exc:
        return Seen(Liveness.ENDED, detail=str(exc))
    except SourceOpenTimeout as exc:
        return Seen(Liveness.TIMED_OUT, detail=str(exc))
    except SourceError as exc:
        return Seen(Liveness.ERROR, detail=str(exc))
    except av.FFmpegError as exc:  # a read failed or timed out: it stopped coming
        return Seen(Liveness.ENDED, detail=exc.__class__.__name__)
    return Seen(Liveness.ENDED, detail="the stream ended")
