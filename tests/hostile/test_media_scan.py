"""Corrupted, truncated and crafted media through `streamguard scan`, run as a real process.

Whatever the input, the scan ends with one line per problem naming the input, exit
code 2 when a source failed (clamscan), no traceback, and a bounded peak memory.
Content that survives the damage is still found.
"""

import random
import re
from pathlib import Path

import pytest

from .media import (
    CLEAN_360,
    FLAGGED_360,
    FLAGGED_720,
    audio_only,
    concatenated_flv,
    declaring_size,
    flipped,
    remux,
    retimed_flv,
    with_empty_packets,
)
from .processes import MEMORY_BOUND_MB, Finished, scan

FLAGGED_AT_S = 4.0  # the flagged keyframe of both flagged clips


@pytest.fixture(scope="module")
def flagged(tmp_path_factory) -> dict[str, Path]:
    """The flagged clip as FLV (committed), MPEG-TS and MP4 (moov at the end)."""
    directory = tmp_path_factory.mktemp("flagged")
    return {
        "flv": FLAGGED_360,
        "ts": remux(FLAGGED_720, directory / "flagged.ts"),
        "mp4": FLAGGED_720,
    }


def well_behaved(result: Finished, inputs: list[Path]) -> dict[Path, list[str]]:
    """Check what every scan must do; returns the error lines of each input."""
    assert "Traceback" not in result.err, result.err
    assert all(line.startswith("streamguard: ") for line in result.err.splitlines()), result.err
    errors: dict[Path, list[str]] = {path: [] for path in inputs}
    for line in result.errors():
        named = [path for path in inputs if f"error: {path}: " in line]
        assert len(named) == 1, f"the error does not name its input: {line}"
        errors[named[0]].append(line)
    failed = any(errors.values())
    matched = any(line.startswith("MATCH ") for line in result.out.splitlines())
    assert result.code == (2 if failed else 1 if matched else 0), result
    assert result.peak_mb < MEMORY_BOUND_MB, f"peak {result.peak_mb:.0f} MB"
    return errors


def matched_at(result: Finished, path: Path) -> set[float]:
    """Stream times of the matches printed for ``path``."""
    found = re.findall(rf"^MATCH {re.escape(str(path))}@([0-9.]+)s ", result.out, re.M)
    return {float(t) for t in found}


@pytest.mark.parametrize("sample", ["keyframes", "interval:0.5"])
@pytest.mark.parametrize("container", ["flv", "ts", "mp4"])
def test_random_byte_flips(flagged, tmp_path, container, sample):
    """Seeded bit flips anywhere in the file, from 10 to 1000 per file. Some hit headers
    (the file cannot be opened, or FFmpeg finds a stream that was not there, which PyAV's
    demuxer used to fail on with an IndexError), most hit packets (damaged pictures,
    which interval sampling also decodes between keyframes)."""
    data = flagged[container].read_bytes()
    inputs = []
    for flips in (10, 200, 1000):
        for seed in range(4 if sample == "keyframes" else 1):  # interval: decodes all 300
            path = tmp_path / f"flipped-{flips}-{seed}.{container}"
            path.write_bytes(flipped(data, flips, seed))
            inputs.append(path)
    result = scan(*inputs, options=("--sample", sample))
    well_behaved(result, inputs)


@pytest.mark.parametrize("container", ["flv", "ts", "mp4"])
def test_cut_mid_packet(flagged, tmp_path, container):
    """Files cut at odd offsets, so the last packet is incomplete."""
    data = flagged[container].read_bytes()
    cuts = {fraction: tmp_path / f"cut-{fraction}.{container}" for fraction in (0.1, 0.6, 0.97)}
    for fraction, path in cuts.items():
        path.write_bytes(data[: int(len(data) * fraction) + 7])
    result = scan(*cuts.values())
    errors = well_behaved(result, list(cuts.values()))
    if container == "mp4":  # the index (moov) is at the end: nothing can be read
        assert all("cannot open" in " ".join(lines) for lines in errors.values()), errors
    else:  # what was received is scanned: the flagged keyframe at 4 s is in the longer cuts
        assert FLAGGED_AT_S in matched_at(result, cuts[0.6])
        assert FLAGGED_AT_S in matched_at(result, cuts[0.97])
    if container == "flv":  # FLV declares its duration, so the cut is reported
        assert "(truncated?)" in errors[cuts[0.6]][0]
    # MPEG-TS has no declared length: a cut stream is a shorter stream.


def test_wrong_timestamps(tmp_path):
    """Timestamps that go backwards, stand still, jump by days or come in random order
    do not hide the pictures: the flagged keyframe is found in each."""
    rng = random.Random(5)
    rewrites = {
        "backwards": lambda t: t + 60_000 if t < 3_000 else t,  # back by 60 s at 3 s
        "frozen": lambda t: 0,
        "jump": lambda t: t + (2**31 if t >= 3_000 else 0),  # forward by 24 days
        "shuffled": lambda t: rng.randrange(0, 20_000),
    }
    inputs = {
        name: retimed_flv(FLAGGED_360, tmp_path / f"{name}.flv", rewrite)
        for name, rewrite in rewrites.items()
    }
    result = scan(*inputs.values())
    well_behaved(result, list(inputs.values()))
    for name, path in inputs.items():
        assert matched_at(result, path), f"{name}: the flagged keyframe was not found"


@pytest.mark.parametrize("sample", ["keyframes", "interval:1"])
def test_resolution_change_mid_stream(tmp_path, sample):
    """360p for 10 s, then 720p: a new AVC sequence header mid-stream, as an encoder
    changing its output size sends. The flagged keyframe of the 720p part is found."""
    flagged_flv = remux(FLAGGED_720, tmp_path / "flagged720.flv")
    both = concatenated_flv(CLEAN_360, flagged_flv, tmp_path / "360-then-720.flv")
    result = scan(both, options=("--sample", sample))
    well_behaved(result, [both])
    assert result.code == 1
    assert matched_at(result, both) == {10.0 + FLAGGED_AT_S}


def test_huge_declared_dimensions(tmp_path):
    """An SPS declaring 16000x16000 (FFmpeg accepts up to about 16250 on a side). A decoder
    that believes it allocates pictures of 384 MB and more; streamguard refuses the video
    before decoding, or at the first picture, in every container."""
    inputs = [
        declaring_size(FLAGGED_720, tmp_path / f"huge.{container}", 16000, 16000)
        for container in ("ts", "flv", "mp4", "mkv")
    ]
    wide = declaring_size(FLAGGED_720, tmp_path / "wide.ts", 9600, 32)
    result = scan(*inputs, wide)
    errors = well_behaved(result, [*inputs, wide])
    for path in inputs:
        (line,) = errors[path]
        assert line.endswith("16000x16000, larger than 8192 px on a side"), line
    assert errors[wide] == [
        f"streamguard: error: {wide}: video is 9600x32, larger than 8192 px on a side"
    ]


@pytest.mark.parametrize("sample", ["keyframes", "interval:1"])
def test_mid_stream_change_to_huge_dimensions(tmp_path, sample):
    """10 s of 360p, then an SPS declaring 16000x16000: the decoder refuses those pictures
    (max_pixels); the scan must say so instead of reporting the rest as clean, and what
    came before is scanned."""
    huge = declaring_size(FLAGGED_720, tmp_path / "huge.flv", 16000, 16000)
    both = concatenated_flv(CLEAN_360, huge, tmp_path / "then-huge.flv")
    result = scan(both, options=("--sample", sample))
    errors = well_behaved(result, [both])
    assert errors[both] == [
        f"streamguard: error: {both}: part of the video is 16000x16000, "
        "larger than 8192 px on a side"
    ]


def test_zero_size_packets(tmp_path):
    """Empty packets mid-stream (NUT stores them). FFmpeg reads an empty packet as "end of
    stream, flush": passed to the decoder, it would stop decoding for good."""
    path = with_empty_packets(FLAGGED_720, tmp_path / "empty-packets.nut")
    for sample in ("keyframes", "interval:1"):
        result = scan(path, options=("--sample", sample))
        well_behaved(result, [path])
        assert FLAGGED_AT_S in matched_at(result, path), result
        assert "warning" not in result.err, result.err


def test_audio_only(tmp_path):
    inputs = [audio_only(tmp_path / f"tone.{container}") for container in ("flv", "ts", "mp4")]
    result = scan(*inputs)
    errors = well_behaved(result, inputs)
    for path in inputs:
        assert errors[path] == [f"streamguard: error: {path}: no video stream"]
