import pytest

from streamguard.config.sampling import Sampling
from streamguard.ingest.replay import paced


def test_parse_sampling():
    assert Sampling() == Sampling.parse("guard") and str(Sampling()) == "guard"
    assert Sampling.parse("keyframes").mode == "keyframes"
    assert Sampling.parse("interval:0.5").interval_s == 0.5
    assert str(Sampling.parse("interval:2")) == "interval:2"


@pytest.mark.parametrize(
    "text",
    ["interval:", "interval:0", "interval:-1", "interval:nan", "interval:inf", "every:1", "key"],
)
def test_bad_sampling(text):
    with pytest.raises(ValueError, match="expected 'guard', 'keyframes' or 'interval:SECONDS'"):
        Sampling.parse(text)


class FakePacket:
    def __init__(self, dts):
        self.dts, self.pts, self.time_base = dts, dts, 0.001


def test_paced_waits_for_media_time():
    now = [100.0]
    sleeps = []

    def sleep(seconds):
        sleeps.append(round(seconds, 6))
        now[0] += seconds

    packets = [FakePacket(0), FakePacket(500), FakePacket(500), FakePacket(2000)]
    out = list(paced(packets, clock=lambda: now[0], sleep=sleep))
    assert out == packets
    assert sleeps == [0.5, 1.5]
