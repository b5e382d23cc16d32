"""Keyframe, interval and guard sampling on real encoded video."""

import itertools
import subprocess

import av
import pytest

from streamguard.config.sampling import Sampling
from streamguard.ingest.sampler import sample_frames
from streamguard.ingest.source import open_source, video_stream
from streamguard.ingest.stats import SampleStats

from ..conftest import SAMPLES

CLIP = str(SAMPLES / "clips" / "clean_720p.mp4")


def keyframe_packet_times(path: str) -> list[float]:
    with av.open(path) as container:
        stream = container.streams.video[0]
        return [
            float(p.pts * stream.time_base)
            for p in container.demux(stream)
            if p.size and p.is_keyframe
        ]


def sampled(path: str, sampling: str) -> tuple[list, SampleStats]:
    stats = SampleStats()
    with open_source(path) as container:
        stream = video_stream(container, path)
        frames = list(sample_frames(container, stream, "s1", Sampling.parse(sampling), stats=stats))
    return frames, stats


def test_keyframes_mode_decodes_only_keyframes():
    frames, stats = sampled(CLIP, "keyframes")
    assert [f.pts_s for f in frames] == keyframe_packet_times(CLIP) == [0.0, 2.0, 4.0, 6.0, 8.0]
    assert stats.frames_decoded == len(frames)  # no non-key frame reached the decoder's output
    assert stats.packets == 300
    frame = frames[0]
    assert (frame.stream_id, frame.width, frame.height) == ("s1", 1280, 720)
    assert frame.luma.shape == (720, 1280) and frame.luma.pixels.dtype.name == "uint8"
    assert frame.luma.studio_range  # H.264 from x264: limited range, expanded only when hashed
    assert frame.received_at > 1.7e9  # wall-clock time, not stream time


@pytest.mark.parametrize(("interval", "expected"), [(1, 10), (0.5, 20), (3, 4)])
def test_interval_mode_keeps_at_most_one_frame_per_interval(interval, expected):
    frames, stats = sampled(CLIP, f"interval:{interval}")
    times = [f.pts_s for f in frames]
    assert len(times) == expected
    assert all(b - a >= interval - 1e-6 for a, b in itertools.pairwise(times))
    assert stats.frames_decoded == 300 + 1  # the first keyframe once more: its display matrix


def test_keyframe_leaves_the_decoder_with_its_own_packet(tmp_path):
    """With B-frames the decoder would hold a keyframe back until later keyframes
    arrive (seconds in a live stream); the sampler drains it at once instead."""
    clip = tmp_path / "bframes.mp4"
    subprocess.run(
        [
            "ffmpeg",
            "-loglevel",
            "error",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x240:rate=30",
            "-t",
            "6",
            "-c:v",
            "libx264",
            "-bf",
            "3",
            "-g",
            "60",
            "-sc_threshold",
            "0",
            str(clip),
        ],
        check=True,
    )
    stats = SampleStats()
    packets_when_yielded = []
    with open_source(str(clip)) as container:
        stream = video_stream(container, str(clip))
        assert stream.codec_context.has_b_frames
        keyframes = Sampling.parse("keyframes")
        for frame in sample_frames(container, stream, "b", keyframes, stats=stats):
            packets_when_yielded.append((frame.pts_s, stats.packets))
    keyframe_times = keyframe_packet_times(str(clip))
    assert [t for t, _ in packets_when_yielded] == pytest.approx(keyframe_times)
    # each keyframe came out while its own packet was the last one read
    assert [n for _, n in packets_when_yielded] == [1, 61, 121]
