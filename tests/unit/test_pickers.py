"""The sampling rules a publisher could try to pull, on synthetic GOPs (pure logic).

A fake decoder stands in for FFmpeg: it reorders B-frames as H.264 does, skips
non-reference frames in the chain (as ``skip_frame=NONREF``), and counts its work.
The integration tests (tests/integration/test_adversary.py) run the same rules on
real encoded video.
"""

import random
from dataclasses import dataclass, replace
from itertools import pairwise

import pytest

from streamguard.config.sampling import GuardSettings
from streamguard.ingest.budget import CpuBudget
from streamguard.ingest.guard_picker import GuardPicker
from streamguard.ingest.pickers import IntervalPicker, KeyframePicker
from streamguard.ingest.picking import PacketTimes

NO_PROBES = GuardSettings(probe_every_s=1e9)


@dataclass(frozen=True)
class Packet:
    pts_s: float
    dts_s: float
    key: bool
    ref: bool
    size: int = 1000

    @property
    def times(self) -> PacketTimes:
        return PacketTimes(self.pts_s, self.dts_s, self.key, self.size)


class FakeDecoder:
    """Outputs frames (their pts) in display order after a reorder delay of two frames."""

    def __init__(self) -> None:
        self.alone_calls = 0
        self.fed = 0
        self._held: list[float] = []

    def alone(self, packet: Packet) -> list[float]:
        self.alone_calls += 1
        return [packet.pts_s] if packet.key else []

    def feed(self, packet: Packet) -> list[float]:
        self.fed += 1
        if packet.ref or packet.key:
            self._held.append(packet.pts_s)
            self._held.sort()
        out = []
        while len(self._held) > 2:
            out.append(self._held.pop(0))
        return out

    def drain(self) -> list[float]:
        out, self._held = self._held, []
        return out

    def pts_s(self, frame: float) -> float:
        return frame


def stream(
    seconds: float, gop_frames: int, fps: float = 30.0, bframes: int = 2, start_s: float = 0.0
) -> list[Packet]:
    """Packets in decoding order of closed GOPs: an I-frame, P-frames every bframes+1
    frames and at the GOP's end, non-reference B-frames sent after the P they precede."""
    order: list[tuple[int, bool, bool]] = []  # (display index, key, reference)
    for first in range(0, round(seconds * fps), gop_frames):
        last = min(first + gop_frames, round(seconds * fps)) - 1
        order.append((first, True, True))
        pending: list[int] = []
        for index in range(first + 1, last + 1):
            if (index - first) % (bframes + 1) == 0 or index == last:
                order.append((index, False, True))
                order += [(b, False, False) for b in pending]
                pending = []
            else:
                pending.append(index)
    return [
        Packet(start_s + index / fps, start_s + (n - bframes) / fps, key, ref, size(key, ref))
        for n, (index, key, ref) in enumerate(order)
    ]


def size(key: bool, ref: bool) -> int:
    """Bytes of a frame of moving content: keyframes 100 kB, P-frames 8 kB, B-frames 2 kB."""
    return 100_000 if key else 8_000 if ref else 2_000


def with_cuts(packets: list[Packet], at_frame: int, gop_frames: int = 60) -> list[Packet]:
    """A new picture at ``at_frame`` of every GOP, coded as a P-frame nearly a keyframe's
    size (what a keyframe-dodging publisher's encoder sends)."""
    return [
        replace(p, size=80_000) if round(p.pts_s * 30) % gop_frames == at_frame else p
        for p in packets
    ]


class Arrival:
    """A wall clock that reads each packet's stream time: a publisher sending in real time."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def run(picker, packets, arrival: Arrival | None = None) -> list:
    """The picks of ``packets``, arriving in real time unless ``arrival`` is None (a burst)."""
    picks = []
    for packet in packets:
        if arrival is not None:
            arrival.now = max(arrival.now, packet.pts_s)
        picks += picker.packet(packet.times, packet)
    return picks + picker.finish()


@dataclass
class Rig:
    picker: GuardPicker
    decoder: FakeDecoder
    arrival: Arrival

    def run(self, packets: list[Packet]) -> list:
        return run(self.picker, packets, self.arrival)


class NeverProbes(random.Random):
    """Random numbers that never draw a probe (each draw is above any probability)."""

    def random(self) -> float:
        return 0.999999


def guard(settings=NO_PROBES, seed=1, budget=None, rng=None) -> Rig:
    decoder, arrival = FakeDecoder(), Arrival()
    picker = GuardPicker(decoder, settings, rng or random.Random(seed), budget, clock=arrival)
    return Rig(picker, decoder, arrival)


def max_gap(picks) -> float:
    times = [pick.pts_s for pick in picks]
    return max(b - a for a, b in pairwise(times))


def test_ordinary_stream_costs_keyframes_only():
    rig = guard()
    picks = rig.run(stream(60, gop_frames=60))
    assert [p.reason for p in picks] == ["keyframe"] * 30
    assert rig.decoder.fed == 0 and rig.decoder.alone_calls == 30
    assert rig.picker.stats.keyframe_interval_s == pytest.approx(2.0)


def test_ntsc_rate_two_second_gop_is_on_time():
    """29.97 fps, 60-frame GOPs: keyframes 2.002 s apart are within one frame step."""
    rig = guard()
    picks = rig.run(stream(60, gop_frames=60, fps=30000 / 1001))
    assert {p.reason for p in picks} == {"keyframe"}
    assert rig.decoder.fed == 0


def test_gop_one_frame_too_long_is_caught_up_before_the_deadline():
    rig = guard()
    picks = rig.run(stream(30, gop_frames=61))
    assert "gap" in {p.reason for p in picks}
    assert max_gap(picks) < 2.0 + 1 / 30
    assert rig.decoder.fed > 0


@pytest.mark.parametrize("gop_s", [3, 10, 30])
def test_long_gop_is_sampled_at_least_every_max_gap(gop_s):
    rig = guard()
    picks = rig.run(stream(60, gop_frames=gop_s * 30))
    assert max_gap(picks) < 2.0 + 1 / 30
    first_gap = next(p for p in picks if p.reason == "gap")
    assert first_gap.pts_s <= 2.0 + 1 / 30


def test_long_gop_deadlines_are_random():
    """After the first deadline in a long GOP, samples are 1-2 s apart, not on a grid."""
    rig = guard(seed=7)
    picks = rig.run(stream(120, gop_frames=3600))[:-1]  # the last: the stream's end
    spacings = {round(b.pts_s - a.pts_s, 2) for a, b in pairwise(picks)}
    assert len(spacings) > 10
    assert min(spacings) >= 1.0 - 1 / 30


def test_long_gop_after_short_ones_is_caught():
    """A publisher with 2 s GOPs slips in one 10 s GOP: it is sampled within max_gap."""
    packets = stream(20, gop_frames=60) + stream(10, gop_frames=300, start_s=20.0)
    packets += stream(10, gop_frames=60, start_s=30.0)
    rig = guard()
    picks = rig.run(packets)
    assert max_gap(picks) < 2.0 + 1 / 30


@pytest.mark.parametrize("share", [0.97, 0.5, 0.25])
def test_probes_land_on_any_part_of_the_gop_in_proportion(share):
    """With a probe every GOP, the share of probes in the last ``share`` of the GOP
    (where a keyframe-dodging publisher shows its content) is ``share``."""
    settings = GuardSettings(probe_every_s=2.0)  # p = 1 for 2 s GOPs
    rig = guard(settings, seed=3)
    picks = rig.run(stream(2000, gop_frames=60))
    probes = [p.pts_s % 2.0 for p in picks if p.reason == "probe"]
    assert len(probes) > 800
    hits = sum(1 for offset in probes if offset >= 2.0 * (1 - share))
    assert hits / len(probes) == pytest.approx(share, abs=0.05)


def test_probe_rate_follows_probe_every_s():
    settings = GuardSettings(probe_every_s=8.0)
    rig = guard(settings, seed=5)
    picks = rig.run(stream(4000, gop_frames=60))
    probes = sum(1 for p in picks if p.reason == "probe")
    assert probes == pytest.approx(4000 / 8.0, rel=0.15)


def test_probe_decodes_only_up_to_its_time():
    """A probed GOP is decoded from its keyframe to the probe, not to its end."""
    settings = GuardSettings(probe_every_s=2.0)
    rig = guard(settings, seed=11)
    picks = rig.run(stream(400, gop_frames=60))
    assert {p.reason for p in picks} == {"keyframe", "probe"}
    # Uniform probe times: on average half of each GOP's 60 packets, plus the frames that
    # reordering holds back and the next reference frame that shows the probe's time passed.
    assert 25 < rig.decoder.fed / 200 < 40


def test_exhausted_budget_stops_probes():
    clock = [0.0]
    budget = CpuBudget(0.01, clock=lambda: clock[0])
    budget.charge(100.0)
    rig = guard(GuardSettings(probe_every_s=2.0), budget=budget)
    picks = rig.run(stream(60, gop_frames=60))
    assert {p.reason for p in picks} == {"keyframe"}
    assert rig.picker.stats.skipped["probe_budget"] > 0
    assert rig.decoder.fed == 0


def test_all_intra_flood_is_sampled_evenly_not_every_frame():
    """60 fps, every frame a keyframe: about two samples a second, never a gap over max."""
    rig = guard()
    picks = rig.run(stream(120, gop_frames=1, fps=60, bframes=0))
    assert len(picks) / 120 == pytest.approx(2.0, rel=0.2)
    assert rig.decoder.alone_calls == len(picks)
    assert max_gap(picks) <= 1.0 + 1 / 60


def test_all_intra_flood_in_keyframes_mode_too():
    arrival = Arrival()
    picker = KeyframePicker(FakeDecoder(), GuardSettings(), random.Random(2), clock=arrival)
    picks = run(picker, stream(60, gop_frames=1, fps=60, bframes=0), arrival)
    assert len(picks) / 60 == pytest.approx(2.0, rel=0.2)


def test_stream_rate_cap_bounds_a_burst():
    """Stream time running 50x the wall clock (a burst): at most the burst allowance."""
    settings = GuardSettings(sample_burst=5, max_samples_per_s=1.0)
    rig = guard(settings)
    picks = run(rig.picker, stream(100, gop_frames=60), arrival=None)
    assert len(picks) <= 6  # the burst, and what the wall clock refilled meanwhile
    assert rig.picker.stats.skipped["stream_cap"] > 0


def test_interval_mode_decodes_everything():
    decoder = FakeDecoder()
    picker = IntervalPicker(decoder, 1.0)
    picks = run(picker, stream(10, gop_frames=60))
    assert len(picks) == 10
    assert decoder.fed == 300


def test_stream_starting_mid_gop_waits_for_a_keyframe():
    packets = [p for p in stream(10, gop_frames=60) if p.pts_s >= 0.5]
    rig = guard()
    picks = rig.run(packets)
    assert picks[0].pts_s == pytest.approx(2.0)
    assert picks[0].reason == "keyframe"


@pytest.mark.parametrize("at_frame", [3, 30, 57])  # a P-frame: 3 frames per anchor
def test_a_scene_cut_between_keyframes_is_sampled_cheaply(at_frame):
    """The frame of a new picture coded as a P-frame is hashed in the GOP it comes in,
    at the cost of decoding the GOP up to it, whether probes come or not."""
    rig = guard(GuardSettings(probe_every_s=6.0), rng=NeverProbes())  # a cut every 2 s
    picks = rig.run(with_cuts(stream(40, gop_frames=60), at_frame))
    cuts = [p for p in picks if p.reason == "cut"]
    assert len(cuts) >= 19  # a cut in the stream's first packets has no usual size to beat
    assert all(round(p.pts_s * 30) % 60 == at_frame for p in cuts)
    # Each GOP is decoded up to its cut and a little further (reordering), no more; the
    # first to its end (its length is not known yet).
    assert (rig.decoder.fed - 60) / 19 <= at_frame + 8


def test_one_stream_cutting_every_gop_takes_a_cut_sample_every_probe_every_s_over_3():
    """A publisher cutting in every GOP (to spend the process's probe budget) gets one
    cut sample per probe_every_s / 3 of its stream time, not one per GOP."""
    rig = guard(GuardSettings(probe_every_s=1e9))  # no probes; cuts spaced 1e9 / 3 s apart
    picks = rig.run(with_cuts(stream(40, gop_frames=60), 30))
    assert [p.reason for p in picks].count("cut") == 1


def test_ordinary_frames_are_no_cuts():
    rig = guard()
    picks = rig.run(stream(40, gop_frames=60))
    assert "cut" not in {p.reason for p in picks}
