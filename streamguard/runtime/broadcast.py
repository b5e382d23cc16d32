"""Which broadcast of a stream a frame belongs to, so that event ids tell broadcasts apart.

A broadcast is named by the start of its timeline: the wall-clock time at which its
stream time 0 arrived (arrival minus stream time), in ms, from the first frame of the
timeline. Event ids include it (events/schema.py, docs/events.md).

Two decisions can only collide if the stream time runs backwards between them: a
publisher that restarts starts its stream time again. So a new timeline begins whenever
a sampled frame's stream time is lower than the one before it, on the same connection
(nginx-rtmp keeps players connected while the publisher reconnects) or on a new one, and
whenever a reconnect finds the start moved by more than ``TOLERANCE_S``. A reconnect that
finds the stream time going on from the same start (a network blip; the media server
kept the broadcast) continues the timeline.

Workers must agree on the name, or a frame decided by two of them (a stream handed over
is briefly watched by both) would get two ids. In a cluster, the first worker to see a
timeline records its start in Redis and the others adopt it: a start within
``TOLERANCE_S`` of a recorded one is the same broadcast, seen with another arrival delay.
"""

import math
from collections.abc import Awaitable, Callable

from redis.asyncio import Redis

TOLERANCE_S = 2.0  # arrival delays of one frame at two workers differ by less
_RECORDED = 4  # timeline starts kept per stream: the current ones and those just before
# The agreed start, in ms, for a caller reporting one: one it comes within tolerance of,
# or its own, recorded. It never agrees to ``previous``, the start of the timeline the
# caller has just left: its stream time went back, so that broadcast has ended.
# KEYS: broadcasts; ARGV: stream id, start ms, previous ms (or ""), tolerance ms, kept
_AGREE = """
local known = redis.call('HGET', KEYS[1], ARGV[1])
local mine, previous, tolerance = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local starts, best = {}, nil
if known then
  for start in string.gmatch(known, '%d+') do
    local value = tonumber(start)
    table.insert(starts, value)
    if value ~= previous and math.abs(value - mine) <= tolerance then
      if best == nil or math.abs(value - mine) < math.abs(best - mine) then best = value end
    end
  end
end
if best ~= nil then return best end
table.insert(starts, mine)
while #starts > tonumber(ARGV[5]) do table.remove(starts, 1) end
redis.call('HSET', KEYS[1], ARGV[1], table.concat(starts, ' '))
return mine
"""

Agree = Callable[[int, int | None], Awaitable[int]]  # (start ms, previous ms) -> agreed ms


class Timeline:
    """The broadcast timelines one worker sees on one stream. Used by its reader thread."""

    def __init__(self, tolerance_s: float = TOLERANCE_S) -> None:
        self.tolerance_s = tolerance_s
        self.start_ms: int | None = None  # the current timeline's start
        self.previous_ms: int | None = None  # the one it replaced
        self.why = ""  # why the current timeline began
        self._last_pts_s = -math.inf
        self._connected = False

    def reconnected(self) -> None:
        """The next frame is the first of a new connection."""
        self._connected = True

    def place(self, pts_s: float, received_at: float) -> bool:
        """Place a sampled frame; True if it begins a new timeline (``start_ms``)."""
        start_ms = round((received_at - pts_s) * 1000)
        why = ""
        if self.start_ms is None:
            why = "first frame"
        elif pts_s < self._last_pts_s:
            why = f"stream time went back from {self._last_pts_s:.3f} s to {pts_s:.3f} s"
        elif self._connected and abs(start_ms - self.start_ms) > self.tolerance_s * 1000:
            why = f"reconnected to a timeline {(start_ms - self.start_ms) / 1000:+.1f} s away"
        self._connected = False
        self._last_pts_s = pts_s
        if not why:
            return False
        if start_ms == self.start_ms:  # a restart so quick its start is the same ms
            start_ms += 1
        self.previous_ms, self.start_ms, self.why = self.start_ms, start_ms, why
        return True


class Broadcasts:
    """The cluster's record of each stream's recent timeline starts (a Redis hash)."""

    def __init__(self, redis: Redis, key: str, tolerance_s: float = TOLERANCE_S) -> None:
        self._key = key
        self._tolerance_ms = round(tolerance_s * 1000)
        self._agree = redis.register_script(_AGREE)

    async def agree(self, stream_id: str, start_ms: int, previous_ms: int | None) -> int:
        """The start every worker uses for the timeline this one saw begin at ``start_ms``."""
        previous = "" if previous_ms is None else str(previous_ms)
        agreed = await self._agree(
            keys=[self._key],
            args=[stream_id, start_ms, previous, self._tolerance_ms, _RECORDED],
        )
        return int(agreed)
