"""The ``guard`` sampling mode's picker, explained in docs/sampling.md; in short:

- keyframes are decoded on their own, as in ``keyframes`` mode;
- the gap: a GOP's packets are kept, undecoded, from its keyframe on. When stream time
  passes ``max_gap_s`` (plus one frame step) after the last sample with no new keyframe,
  they are decoded (reference frames only) and the newest frame before that deadline
  is hashed; then the rest of that long GOP is decoded as it arrives, hashed at
  random spacings of ``max_gap_s / 2`` to ``max_gap_s``;
- probes: at a keyframe, with probability (keyframe interval / ``probe_every_s``), one
  frame at a uniformly random time in the coming GOP is hashed, while the process's
  probe CPU budget lasts. Whatever share f of a GOP a publisher shows something on,
  away from keyframes or not, a probe lands on it with probability f;
- cuts: a non-key frame whose packet is at least half the size of its GOP's keyframe
  and eight times the stream's usual non-key frame is a new picture coded as a P-frame
  (a scene cut): the first one of a GOP is hashed (at most one per ``probe_every_s / 3``
  of a stream: one stream's cuts cannot spend the process's budget), from the same
  budget. Showing
  something else than the keyframe costs such a frame, unless it fades in; the probes
  are for what fades in;
- floods: a keyframe closer to the last sample than a random spacing of mean
  ``min_gap_s`` is not decoded, and a stream takes at most ``max_samples_per_s`` (in a
  burst ``sample_burst``) samples a second.
"""

import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic

from streamguard.config.sampling import GuardSettings
from streamguard.ingest.budget import CpuBudget
from streamguard.ingest.picking import Decoder, F, P, PacketTimes, Pick, PickerStats, SampleReason
from streamguard.ingest.spacing import SampleSpacing

CUT_OVER_USUAL = 8  # a cut's packet against the moving average of non-key packets
MAX_FRAME_STEP_S = 0.05
"""The one-frame tolerance on the gap is the stream's frame step, at most this: a frame
shows until the next, so samples ``max_gap_s + step`` apart leave nothing on screen
for ``max_gap_s`` unhashed; 29.97 fps 2 s GOPs (2.002 s) stay keyframes-only."""


@dataclass(frozen=True, slots=True)
class _Target:
    limit_s: float  # the sample is the newest frame at or before this
    reason: SampleReason  # all but interval


class GuardPicker(Generic[P, F]):
    """``guard``: see the module docstring and docs/sampling.md."""

    def __init__(
        self,
        decoder: Decoder[P, F],
        settings: GuardSettings,
        rng: random.Random,
        budget: CpuBudget | None = None,
        *,
        clock: Callable[[], float] | None = time.monotonic,
        cpu_clock: Callable[[], float] = time.thread_time,
    ) -> None:
        self.stats = PickerStats()
        self._decoder = decoder
        self._settings = settings
        self._rng = rng
        self._budget = budget
        self._cpu_clock = cpu_clock
        self._spacing = SampleSpacing(settings, rng, self.stats, clock)
        self._last_s: float | None = None  # stream time of the last sample
        self._due_s: float | None = None  # the gap's deadline, before the frame step
        self._key_s: float | None = None  # the current GOP's keyframe
        self._gop: list[P] = []  # its packets, while they fit in the buffer
        self._gop_bytes = 0
        self._fed = 0  # how many of them the chain decoder has had
        self._feeding = False  # every packet goes to the chain decoder as it comes
        self._want_key_s: float | None = None  # the keyframe, sampled from the chain
        self._probe_s: float | None = None
        self._cut_s: float | None = None  # a scene cut's frame, to sample
        self._cut_seen = False  # one cut sample per GOP
        self._next_cut_s = -math.inf  # and one per probe_every_s / 3 of stream time
        self._key_size = 0
        self._frame_size = 0.0  # moving average of non-key packets' sizes
        self._held: tuple[F, float] | None = None  # newest decoded frame not past a target
        self._step_s = MAX_FRAME_STEP_S
        self._last_sent_s: float | None = None

    # -- packets ----------------------------------------------------------------------

    def packet(self, times: PacketTimes, packet: P) -> list[Pick[F]]:
        picks: list[Pick[F]] = []
        self._observe_step(times.sent_s)
        key_s = times.pts_s if times.key else None  # a keyframe's, if it has one
        # Every frame shown before a keyframe, or before a packet's decoding time, came
        # in an earlier packet: if a deadline has passed, decode what is kept up to it.
        reached_s = key_s if key_s is not None else times.sent_s
        if self._key_s is not None and not self._feeding and self._passed(reached_s):
            picks += self._start_feeding()
        if key_s is not None:
            picks += self._end_gop(key_s)
            picks += self._start_gop(times, packet)
        elif self._key_s is not None:  # before the first keyframe nothing can be decoded
            self._keep(times, packet)
            self._watch_cut(times)
            if self._feeding:
                picks += self._offer(self._chain(packet))
                self._fed = len(self._gop)
            elif self._over_buffer():
                picks += self._start_feeding()  # memory: decode now rather than keep
        return picks

    def finish(self) -> list[Pick[F]]:
        """The end of the stream: what its last GOP still owes (a cut, a probe, the gap)."""
        picks: list[Pick[F]] = []
        target, last_sent_s = self._target(), self._last_sent_s
        owed = target is not None and last_sent_s is not None and target.limit_s <= last_sent_s
        if owed and not self._feeding and self._key_s is not None:
            picks += self._start_feeding()
        if self._feeding:
            picks += self._offer(self._drain())
            if self._held is not None:  # a long GOP's end: its last frame
                frame, pts_s = self._held
                self._held = None
                picks += self._take(frame, pts_s, "gap")
        return picks

    def _observe_step(self, sent_s: float | None) -> None:
        if sent_s is None:
            return
        if self._last_sent_s is not None and sent_s > self._last_sent_s:
            self._step_s = min(self._step_s, sent_s - self._last_sent_s)
        self._last_sent_s = sent_s

    def _keep(self, times: PacketTimes, packet: P) -> None:
        """Keep a packet of the GOP, to decode it later if a deadline or probe needs it.
        Past the buffer's size a GOP is decoded as it comes, to its end."""
        self._gop_bytes += times.size
        if not (self._feeding and self._over_buffer()):
            self._gop.append(packet)

    def _over_buffer(self) -> bool:
        return self._gop_bytes > self._settings.max_gop_buffer_mb * 2**20

    def _passed(self, sent_s: float | None) -> bool:
        if sent_s is None:
            return False
        target = self._target()
        return target is not None and sent_s > target.limit_s

    def _target(self) -> _Target | None:
        """The earliest target: (the stream time a sample must be at or before, why).
        Plain comparisons, no allocation but the result: it runs for every packet."""
        target = None
        if self._due_s is not None:
            # A frame shows until the next one: a sample one step after the deadline
            # still leaves nothing on screen for max_gap_s unhashed.
            target = _Target(self._due_s + self._step_s - 1e-6, "gap")
        deadlines: tuple[tuple[float | None, SampleReason], ...] = (
            (self._want_key_s, "keyframe"),
            (self._probe_s, "probe"),
            (self._cut_s, "cut"),
        )
        for limit_s, reason in deadlines:
            if limit_s is not None and (target is None or limit_s < target.limit_s):
                target = _Target(limit_s, reason)
        return target

    # -- GOPs -------------------------------------------------------------------------

    def _end_gop(self, next_key_s: float) -> list[Pick[F]]:
        picks: list[Pick[F]] = []
        if self._feeding:
            picks += self._offer(self._drain())
        target = self._target()
        if self._held is not None and target is not None and target.limit_s < next_key_s:
            frame, pts_s = self._held
            picks += self._take(frame, pts_s, target.reason)
        if self._key_s is not None and next_key_s > self._key_s:
            self.stats.keyframe_interval_s = next_key_s - self._key_s
        self._held = self._probe_s = self._want_key_s = self._cut_s = None
        self._cut_seen = False
        self._feeding = self.stats.decoding_beyond_keyframes = False
        self._gop, self._gop_bytes, self._fed = [], 0, 0
        return picks

    def _start_gop(self, times: PacketTimes, packet: P) -> list[Pick[F]]:
        key_s = times.pts_s
        assert key_s is not None
        if self._last_s is not None and key_s <= self._last_s:
            # Stream time went back or stands still (a timestamp reset, an HLS
            # discontinuity, a frozen clock): the old timeline's deadlines mean nothing.
            self._last_s = self._due_s = None
            self.stats.keyframe_interval_s = None
        self._key_s, self._key_size = key_s, times.size
        self._keep(times, packet)
        sample_key = self._spacing.keyframe_due(key_s)
        self._probe_s = self._draw_probe(key_s)
        if self._probe_s is not None:
            # Probed GOPs are decoded as a chain from here: the keyframe's sample comes
            # out of the chain (a few frames later) instead of being decoded twice.
            if sample_key:
                self._want_key_s = key_s
            self._feeding = self.stats.decoding_beyond_keyframes = True
            self._fed = 1
            return self._offer(self._chain(packet))
        if not sample_key or not self._spacing.take():
            return []
        picks: list[Pick[F]] = []
        for frame in self._decoder.alone(packet):
            if (pts_s := self._decoder.pts_s(frame)) is not None:
                picks += self._taken(frame, pts_s, "keyframe")
        return picks

    def _draw_probe(self, key_s: float) -> float | None:
        expected_s = self.stats.keyframe_interval_s or self._settings.max_gap_s
        if self._rng.random() >= min(1.0, expected_s / self._settings.probe_every_s):
            return None
        if self._budget is not None and not self._budget.allows():
            self.stats.skipped["probe_budget"] += 1
            return None
        offset_s = self._rng.uniform(0.0, expected_s)
        if offset_s <= self._step_s:
            return None  # it would land on the keyframe, which is sampled anyway
        self.stats.probes += 1
        return key_s + offset_s

    def _watch_cut(self, times: PacketTimes) -> None:
        usual, self._frame_size = self._frame_size, 0.9 * self._frame_size + 0.1 * times.size
        if self._cut_seen or times.pts_s is None or not usual:
            return
        if 2 * times.size < self._key_size or times.size < CUT_OVER_USUAL * usual:
            return
        self._cut_seen = True
        if times.pts_s < self._next_cut_s:
            return  # a stream cutting every GOP does not take the process's budget for it
        if self._budget is not None and not self._budget.allows():
            self.stats.skipped["probe_budget"] += 1
            return
        self.stats.probes += 1
        self._cut_s = times.pts_s
        self._next_cut_s = times.pts_s + self._settings.probe_every_s / 3

    # -- the chain decoder ------------------------------------------------------------

    def _start_feeding(self) -> list[Pick[F]]:
        """Decode the kept packets of this GOP, then every packet as it comes."""
        self._feeding = self.stats.decoding_beyond_keyframes = True
        picks: list[Pick[F]] = []
        for packet in self._gop[self._fed :]:
            picks += self._offer(self._chain(packet))
        self._fed = len(self._gop)
        return picks

    def _chain(self, packet: P) -> list[F]:
        if (self._probe_s is None and self._cut_s is None) or self._budget is None:
            return self._decoder.feed(packet)
        started = self._cpu_clock()
        frames = self._decoder.feed(packet)
        spent_s = self._cpu_clock() - started
        self.stats.probe_cpu_s += spent_s
        self._budget.charge(spent_s)
        return frames

    def _drain(self) -> list[F]:
        self._fed = 0  # the chain restarts at the keyframe if it is needed again
        return self._decoder.drain()

    def _offer(self, frames: list[F]) -> list[Pick[F]]:
        """Hold each decoded frame until a later one shows it is the newest before a target."""
        picks: list[Pick[F]] = []
        for frame in frames:
            pts_s = self._decoder.pts_s(frame)
            if pts_s is None or (self._last_s is not None and pts_s <= self._last_s):
                continue  # sampled already (the keyframe), or before it
            while (target := self._target()) is not None and pts_s > target.limit_s:
                if self._held is not None:
                    held, held_s = self._held
                    self._held = None
                    picks += self._take(held, held_s, target.reason)
                else:  # no frame at or before the target: this one is the first after it
                    picks += self._take(frame, pts_s, target.reason)
                    break
            else:
                if target is not None and pts_s == target.limit_s:
                    picks += self._take(frame, pts_s, target.reason)
                else:
                    self._held = (frame, pts_s)
        self._maybe_stop()
        return picks

    def _maybe_stop(self) -> None:
        """Stop decoding a GOP once no target is left before its expected end."""
        if not self._feeding or self._want_key_s is not None or self._probe_s is not None:
            return
        if self._cut_s is not None:
            return
        if self._key_s is None or self.stats.keyframe_interval_s is None or self._over_buffer():
            return
        expected_end_s = self._key_s + self.stats.keyframe_interval_s
        late = self._last_sent_s is not None and self._last_sent_s >= expected_end_s
        if not late and (self._due_s is None or self._due_s >= expected_end_s):
            self._feeding = self.stats.decoding_beyond_keyframes = False
            self._held = None
            self._drain()

    # -- samples ----------------------------------------------------------------------

    def _take(self, frame: F, pts_s: float, reason: SampleReason) -> list[Pick[F]]:
        """Sample ``frame`` for ``reason`` if the stream's cap allows."""
        self._clear(reason)
        if self._last_s is not None and pts_s <= self._last_s:
            return []
        if not self._spacing.take():
            self._advance(pts_s, reason)  # not sampled: the next deadline still moves on
            return []
        return self._taken(frame, pts_s, reason)

    def _taken(self, frame: F, pts_s: float, reason: SampleReason) -> list[Pick[F]]:
        if reason == "keyframe":  # floods are of keyframes; other samples have deadlines
            self._spacing.taken(pts_s)
        self._advance(pts_s, reason)
        return [Pick(frame, pts_s, reason)]

    def _clear(self, reason: SampleReason) -> None:
        """The target ``reason`` is met (or cannot be: its frame was sampled already)."""
        if reason == "probe":
            self._probe_s = None
        elif reason == "cut":
            self._cut_s = None
        elif reason == "keyframe":
            self._want_key_s = None

    def _advance(self, pts_s: float, reason: SampleReason) -> None:
        """Set the next deadline after a sample at ``pts_s``."""
        self._last_s = pts_s
        max_gap_s = self._settings.max_gap_s
        # In a long GOP the deadlines are random, so a publisher cannot time what it shows
        # between them; after a keyframe or a probe the next keyframe is expected on time.
        gap_s = self._rng.uniform(max_gap_s / 2, max_gap_s) if reason == "gap" else max_gap_s
        self._due_s = pts_s + gap_s
        if self._probe_s is not None and self._probe_s <= pts_s:
            self._probe_s = None
        if self._cut_s is not None and self._cut_s <= pts_s:
            self._cut_s = None
