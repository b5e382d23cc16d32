"""Evidence that a stream airs a known video: matched frames that line up in time.

Each blocklist entry of a known video (vPDQ: one PDQ per second) carries its video and
its time in it. A stream airing that video matches frame after frame, and the video
times of those matches advance with the stream times of the frames: ``video time =
offset + speed x stream time``. Frames that merely resemble some frame of the video
match at times that do not line up. So per video, this module looks for the offset and
speed that most of the stream's recent matches agree on (docs/policy.md, "Known videos"):

- speeds from 0.9 to 1.1 in steps small enough that the offset drifts by less than the
  tolerance over the window (a re-stream sped up or slowed down by up to 10 %), forwards
  and backwards (a re-stream played in reverse);
- an offset tolerance of ``TOLERANCE_S`` either way: the list has a frame per second, so
  the nearest listed frame is up to half a second from the aired one, and a still
  scene matches several listed frames;
- cuts: after a cut (or a jump in the stream's timestamps) the offset changes. The
  frames of each offset that at least two samples agree on count, each sample once;
  a lone match of a video counts for nothing.

Stream times are the frames' presentation times: they are what viewers see, so a
publisher cannot scramble them without breaking playback.
"""

from bisect import bisect_left, bisect_right
from collections import deque
from dataclasses import dataclass

from streamguard.detect.matcher import Match, strongest
from streamguard.events.schema import VideoMatch

TOLERANCE_S = 1.0
MAX_SPEED_CHANGE = 0.10
_MIN_AGREEING = 2  # samples at one offset for it to count (one is a lone match)


@dataclass(frozen=True, slots=True)
class VideoEvidence:
    """How much of a stream's recent samples line up with one known video."""

    video: str
    offset_s: float  # video time minus stream time, at the latest aligned sample
    frames_matched: int  # samples that line up (each counted once)
    window_s: float  # stream time from the first to the last aligned sample
    coverage: float  # share of the samples in that span that line up
    match: Match  # the strongest aligned match: the event's ``match``

    def summary(self) -> VideoMatch:
        """The event's ``video`` object."""
        return VideoMatch(
            self.video, self.offset_s, self.frames_matched, self.window_s, self.coverage
        )


@dataclass(frozen=True, slots=True)
class _Pair:
    """A sample's match of one frame of a known video."""

    stream_s: float
    video_s: float
    match: Match


def speeds(window_s: float) -> list[float]:
    """The speeds tried: 1.0 first, then outwards to ±10 % in steps whose offset drift over
    ``window_s`` stays within the tolerance; then the same played backwards (a re-stream
    reversed to dodge matching in order)."""
    step = min(TOLERANCE_S / max(window_s, 1.0), MAX_SPEED_CHANGE)
    count = int(MAX_SPEED_CHANGE / step + 0.999)
    forwards = [1.0]
    for i in range(1, count + 1):
        change = min(i * step, MAX_SPEED_CHANGE)
        forwards += [1.0 + change, 1.0 - change]
    return forwards + [-speed for speed in forwards]


class VideoTracker:
    """One stream's matches of known-video frames within ``window_s`` of stream time."""

    def __init__(self, window_s: float, min_coverage: float = 0.0) -> None:
        """``min_coverage``: the evidence reported is the longest run of aligned samples
        with at least this coverage (samples that matched nothing between aligned ones
        lower it), so that a dense run is not hidden by a longer, sparser one."""
        self.window_s = window_s
        self.min_coverage = min_coverage
        self._speeds = speeds(window_s)
        self._samples: deque[float] = deque()  # stream times of every sample seen
        self._pairs: dict[str, deque[_Pair]] = {}
        self.best: dict[str, VideoEvidence] = {}  # per known video: the most samples aligned

    def observe(self, stream_s: float, matches: list[Match]) -> list[VideoEvidence]:
        """Record a sample (``matches``: its matches of known-video frames, maybe none) and
        return the evidence for each video it matched."""
        if self._samples and stream_s < self._samples[-1] - self.window_s:
            self._forget()  # timestamps went back by more than the window: a new broadcast
        self._samples.append(stream_s)
        videos = set()
        for match in matches:
            entry = match.hit.entry
            if entry.ts is None:
                continue
            self._pairs.setdefault(entry.video, deque()).append(_Pair(stream_s, entry.ts, match))
            videos.add(entry.video)
        self._prune(stream_s)
        found = [evidence for video in videos if (evidence := self._evidence(video))]
        for evidence in found:
            known = self.best.get(evidence.video)
            if known is None or evidence.frames_matched > known.frames_matched:
                self.best[evidence.video] = evidence
        return found

    def _forget(self) -> None:
        self._samples.clear()
        self._pairs.clear()

    def _prune(self, now_s: float) -> None:
        start = now_s - self.window_s
        samples = self._samples
        while samples and samples[0] < start:
            samples.popleft()
        for video in list(self._pairs):
            pairs = self._pairs[video]
            while pairs and pairs[0].stream_s < start:
                pairs.popleft()
            if not pairs:
                del self._pairs[video]

    def _evidence(self, video: str) -> VideoEvidence | None:
        pairs = list(self._pairs[video])
        best: list[list[_Pair]] = []
        for speed in self._speeds:
            groups = _aligned(pairs, speed)
            if _count(groups) > _count(best):
                best = groups
        if not best:
            return None
        aligned = [pair for group in best for pair in group]
        times = sorted({pair.stream_s for pair in aligned})
        first, last, matched, seen = self._densest_run(times)
        chosen = [pair for pair in aligned if first <= pair.stream_s <= last]
        latest = max(chosen, key=lambda pair: pair.stream_s)
        return VideoEvidence(
            video=video,
            offset_s=latest.video_s - latest.stream_s,
            frames_matched=matched,
            window_s=last - first,
            coverage=matched / max(seen, 1),
            match=strongest([pair.match for pair in chosen]),
        )

    def _densest_run(self, times: list[float]) -> tuple[float, float, int, int]:
        """The first and last of the most aligned sample times (``times``, sorted) in one
        run whose coverage is at least ``min_coverage`` (the latest of equals), how many
        aligned samples it holds, and how many samples were seen in it."""
        seen_times = sorted(self._samples)
        best = (times[-1], times[-1], 1, 1)  # one sample: covered
        for i, first in enumerate(times):
            below = bisect_left(seen_times, first)
            for j in range(i + 1, len(times)):
                last, count = times[j], j - i + 1
                seen = bisect_right(seen_times, last) - below
                if count / seen >= self.min_coverage and (count, last) >= (best[2], best[1]):
                    best = (first, last, count, seen)
        return best


def _count(groups: list[list[_Pair]]) -> int:
    return len({pair.stream_s for group in groups for pair in group})


def _aligned(pairs: list[_Pair], speed: float) -> list[list[_Pair]]:
    """Groups of pairs that agree on an offset at this speed, at least ``_MIN_AGREEING``
    samples each, each sample in one group only: the largest group first, then the
    largest of what is left (a cut gives a second offset), and so on."""
    anchor = pairs[-1].stream_s
    keyed = sorted(pairs, key=lambda pair: pair.video_s - speed * (pair.stream_s - anchor))
    offsets = [pair.video_s - speed * (pair.stream_s - anchor) for pair in keyed]
    used: set[float] = set()
    groups: list[list[_Pair]] = []
    while True:
        group = _densest(keyed, offsets, used)
        if len({pair.stream_s for pair in group}) < _MIN_AGREEING:
            return groups
        groups.append(group)
        used.update(pair.stream_s for pair in group)


def _densest(keyed: list[_Pair], offsets: list[float], used: set[float]) -> list[_Pair]:
    """The pairs (of samples not ``used``) whose offsets lie within one tolerance band
    (``2 x TOLERANCE_S`` wide) holding the most distinct samples."""
    best: list[_Pair] = []
    best_count = 0
    end = 0
    for start in range(len(keyed)):
        end = max(end, start)
        while end < len(keyed) and offsets[end] - offsets[start] <= 2 * TOLERANCE_S:
            end += 1
        band = [pair for pair in keyed[start:end] if pair.stream_s not in used]
        count = len({pair.stream_s for pair in band})
        if count > best_count:
            best, best_count = band, count
    return best
