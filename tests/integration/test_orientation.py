"""Frames are hashed as shown: the display matrix of phone video, against ffmpeg itself."""

import itertools
import subprocess
from pathlib import Path

import av
import numpy as np
import pytest

from streamguard.blocklist.memory import Blocklist
from streamguard.config.model import Robustness
from streamguard.config.sampling import Sampling
from streamguard.detect.matcher import FrameMatcher
from streamguard.hashing.preprocess import Luma
from streamguard.ingest.sampler import Frame, sample_frames
from streamguard.ingest.source import open_source, video_stream

from ..conftest import SAMPLES

FLAGGED = SAMPLES / "clips" / "flagged_720p.mp4"  # flagged_01.png is the keyframe at 4 s
PLAIN = Robustness(borders=False, dihedral=False)  # no flip or turn tried by the matcher


def frames_of(path: Path, sampling: Sampling | None = None) -> list[Frame]:
    with open_source(str(path)) as container:
        stream = video_stream(container, str(path))
        return list(sample_frames(container, stream, path.name, sampling or Sampling()))


def ffmpeg(*args: str) -> bytes:
    command = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", *args]
    return subprocess.run(command, check=True, capture_output=True, timeout=120).stdout


# -- every orientation, as ffmpeg shows it ------------------------------------------------


def asymmetric_picture():
    """64x48, no symmetry: a bright block top left, a dark one bottom right, a ramp."""
    rows, columns = np.mgrid[0:48, 0:64]
    picture = ((columns * 3 + rows) % 200 + 30).astype(np.uint8)
    picture[4:14, 6:20], picture[30:44, 50:60] = 235, 16
    return picture


def tiny_clip(path: Path, degrees: int, hflip: bool, vflip: bool) -> None:
    """One lossless frame with a display matrix written by FFmpeg's own helpers
    (av_display_rotation_set, av_display_matrix_flip)."""
    picture = asymmetric_picture()
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=1)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv444p"
        stream.options = {"qp": "0"}
        stream.set_display_rotation(degrees, hflip=hflip, vflip=vflip)
        grey = np.full_like(picture, 128)
        frame = av.VideoFrame.from_ndarray(np.stack([picture, grey, grey]), format="yuv444p")
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)


@pytest.mark.parametrize(
    ("degrees", "hflip", "vflip"),
    list(itertools.product((0, 90, 180, 270), (False, True), (False, True))),
)
def test_every_orientation_is_applied_as_ffmpeg_shows_it(tmp_path, degrees, hflip, vflip):
    clip = tmp_path / "tiny.mp4"
    tiny_clip(clip, degrees, hflip, vflip)
    (frame,) = frames_of(clip)
    shown = ffmpeg("-i", str(clip), "-f", "rawvideo", "-pix_fmt", "gray", "-")  # autorotates
    turned = degrees % 180 == 90
    assert (frame.width, frame.height) == ((48, 64) if turned else (64, 48))
    assert frame.luma.shape == (frame.height, frame.width)
    expected = np.frombuffer(shown, np.uint8).reshape(frame.luma.shape)
    assert np.abs(frame.luma.full_range().astype(int) - expected).max() <= 1  # both 0..255
    # a test that means something: the picture as coded differs, but where the turn and
    # the mirrors cancel out
    coded = Luma(asymmetric_picture(), studio_range=True).full_range()
    if (degrees, hflip, vflip) in ((0, False, False), (180, True, True)):
        assert np.abs(coded.astype(int) - expected).max() <= 1
    else:
        assert coded.shape != expected.shape or np.abs(coded.astype(int) - expected).mean() > 20


# -- a phone clip, coded sideways -----------------------------------------------------------


@pytest.fixture(scope="module")
def sideways(tmp_path_factory) -> tuple[Path, Path]:
    """flagged_720p.mp4 up to its flagged keyframe at 4 s, coded a quarter turn clockwise
    (720x1280), as it is and with a display matrix that turns it back (90 degrees
    counter-clockwise), as a phone held sideways records it."""
    directory = tmp_path_factory.mktemp("orientation")
    coded = directory / "coded_sideways.mp4"
    ffmpeg(
        *("-t", "4.5", "-i", str(FLAGGED), "-vf", "transpose=clock", "-c:v", "libx264"),
        *("-preset", "veryfast", "-crf", "18", "-g", "60", "-sc_threshold", "0", "-bf", "0"),
        *("-threads", "1", str(coded)),
    )
    phone = directory / "phone.mp4"
    try:  # FFmpeg 6.1 and later
        ffmpeg("-display_rotation", "90", "-i", str(coded), "-c", "copy", str(phone))
    except subprocess.CalledProcessError:  # older: the muxer's rotate tag
        ffmpeg("-i", str(coded), "-c", "copy", "-metadata:s:v", "rotate=90", str(phone))
    with av.open(str(phone)) as container:
        assert next(container.decode(video=0)).rotation == 90  # counter-clockwise
    return coded, phone


def distances(frames: list[Frame], robustness: Robustness) -> dict[str, int]:
    """Each sample entry's distance to the keyframe at 4 s; '' for a match not as shown."""
    blocklist, _ = Blocklist.from_files([SAMPLES / "blocklist.csv"])
    matcher = FrameMatcher(blocklist, robustness=robustness)
    (flagged,) = [frame for frame in frames if frame.pts_s == 4.0]
    return {m.hit.entry.id: m.hit.distance for m in matcher(flagged) if not m.transform}


@pytest.mark.parametrize("sample", ["guard", "interval:0.5"])
def test_a_phone_clip_coded_sideways_matches_as_shown(sideways, sample):
    """Keyframes decoded on their own and frames of a decoded GOP (interval: every one)."""
    coded, phone = sideways
    frames = frames_of(phone, Sampling.parse(sample))
    assert {(f.width, f.height) for f in frames} == {(1280, 720)}  # as shown, not as coded
    upright = distances(frames_of(FLAGGED), PLAIN)
    shown = distances(frames, PLAIN)
    # PDQ: the frame path's few bits from the entry, the picture's reference hash
    assert upright["flagged_01-pdq"] <= 8 and upright["flagged_01-phash"] == 0
    # the re-encode of the turned picture costs a few bits, the orientation nothing
    assert shown["flagged_01-pdq"] <= upright["flagged_01-pdq"] + 6
    assert shown["flagged_01-phash"] <= upright["flagged_01-phash"] + 2
    # matched as it is, so a strong match may kill on one frame (not a widened rotate90)
    assert distances(frames, Robustness())["flagged_01-pdq"] == shown["flagged_01-pdq"]
    # the same pictures without their display matrix match nothing without the dihedral step
    assert {(f.width, f.height) for f in frames_of(coded)} == {(720, 1280)}
    assert distances(frames_of(coded), PLAIN) == {}
