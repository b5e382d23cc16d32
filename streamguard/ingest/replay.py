"""Read a recorded file as if it were live: packets no faster than their timestamps."""

import time
from collections.abc import Callable, Iterable, Iterator

import av


def paced(
    packets: Iterable[av.Packet],
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[av.Packet]:
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
