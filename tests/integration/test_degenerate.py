"""Degenerate entries end to end: refused by import, add, add-image, scan and run; loaded
with --allow-degenerate, deciding nothing on their own; benign featureless video matches none."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from streamguard.blocklist.degenerate import Featureless
from streamguard.blocklist.memory import Blocklist
from streamguard.config.policy import Policy
from streamguard.detect.matcher import FrameMatcher
from streamguard.detect.policy import StreamPolicy
from streamguard.evaluation.corpus import keyframes
from streamguard.hashing import ALGORITHMS, Luma, hash_luma
from streamguard.hashing.featureless import featureless_pictures

from ..conftest import SAMPLES
from ..support.benign import EVERY_KEYFRAME, featureless_only, render, segment_at
from ..support.cli import blocklist, streamguard
from ..support.redis import RedisServer
from ..support.service import Service
from .conftest import NginxRtmp, publishing
from .test_run import FAST_RETRIES, FLAGGED_720

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SAMPLE_LIST = SAMPLES / "blocklist.csv"
PDQ_ZERO = "0" * 64
REASON = "degenerate hash (a flat or gradient picture has it); --allow-degenerate loads it"


def entries(redis: RedisServer) -> int:
    done = blocklist(redis, "stats", "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)["entries"]


def careless(path: Path) -> Path:
    """Two degenerate entries between two real ones, after a comment and a blank line."""
    path.write_text(
        "algo,hash,id,list,category\n"
        "# made by hashing whatever was on screen\n"
        "phash,dab222dc393cdc38,real-1,careless,test\n"
        "\n"
        f"pdq,{PDQ_ZERO},black-pdq,careless,test\n"
        "dhash,ffffffffffffffff,ramp-dhash,careless,test\n"
        "dhash,bc49b810b07464c8,real-2,careless,test\n"
    )
    return path


def refusals(path: Path, prefix: str) -> list[str]:
    return [
        f"{prefix}{path}: line 5: entry 'black-pdq' (pdq) refused: {REASON}",
        f"{prefix}{path}: line 6: entry 'ramp-dhash' (dhash) refused: {REASON}",
    ]


def test_import_refuses_degenerate_entries_and_writes_the_rest(redis, tmp_path):
    path = careless(tmp_path / "careless.csv")
    done = blocklist(redis, "import", str(path))
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert lines[:2] == refusals(path, "blocklist: ")
    assert "2 degenerate entries refused (--allow-degenerate loads them)" in lines[-1]
    assert entries(redis) == 2
    assert PDQ_ZERO not in done.stderr and "ffffffffffffffff" not in done.stderr

    allowed = blocklist(redis, "import", "--allow-degenerate", str(path))
    assert allowed.returncode == 0, allowed.stderr
    assert "refused" not in allowed.stderr
    assert "2 degenerate entries loaded (they decide nothing on their own)" in allowed.stderr
    assert entries(redis) == 4


def test_add_of_a_degenerate_hash_is_an_error_unless_allowed(redis):
    args = ["add", "--algo", "phash", "--hash", "8000000000000000", "--id", "grey"]
    done = blocklist(redis, *args)
    assert done.returncode == 2
    assert done.stderr.strip() == (
        f"streamguard: error: blocklist add: entry 'grey' (phash) refused: {REASON}"
    )
    assert entries(redis) == 0
    allowed = blocklist(redis, *args, "--allow-degenerate")
    assert allowed.returncode == 0, allowed.stderr
    assert "manual/grey (degenerate: it decides nothing on its own): 1 added" in allowed.stderr
    assert entries(redis) == 1


def test_add_image_never_writes_a_featureless_picture(redis, tmp_path):
    pictures = {"black": np.zeros((360, 640), np.uint8)}
    pictures["ramp"] = np.tile(np.linspace(0, 255, 640).astype(np.uint8), (360, 1))
    paths = []
    for name, pixels in pictures.items():
        paths.append(tmp_path / f"{name}.png")
        Image.fromarray(pixels).save(paths[-1])
    done = blocklist(redis, "add-image", *map(str, paths), "--variants")
    assert done.returncode == 2
    assert done.stderr.splitlines()[-1] == (
        "streamguard: error: blocklist add-image: no usable hash in the given images"
    )
    skipped = [line for line in done.stderr.splitlines() if line.endswith("; skipped")]
    assert len(skipped) == 2 * (16 + 17 + 17)  # per picture: PDQ of 16 views, the others 17
    black, ramp = (f"blocklist: {path} (as is): " for path in paths)
    assert f"{black}pdq: quality 0 is too low; skipped" in skipped
    assert f"{black}phash: 0 stable bits of 64 are too few; skipped" in skipped
    assert f"{ramp}dhash: {REASON.split(';')[0]}; skipped" in skipped  # all 64 bits stable
    output = tmp_path / "mine.csv"
    to_file = streamguard("blocklist", "add-image", str(paths[0]), "--output", str(output))
    assert to_file.returncode == 2 and not output.exists()
    assert entries(redis) == 0


def test_scan_refuses_from_files_and_loads_them_with_the_flag(tmp_path):
    path = careless(tmp_path / "careless.csv")
    done = streamguard("scan", "--blocklist", str(path), str(FLAGGED_720))
    assert done.returncode == 1  # the real entries still match the flagged clip
    lines = done.stderr.splitlines()
    assert lines[:3] == [
        *refusals(path, "streamguard: warning: "),
        "streamguard: warning: 2 degenerate entries refused; the other 2 loaded",
    ]
    assert {line.split()[2] for line in done.stdout.splitlines()} == {"phash", "dhash"}

    allowed = streamguard("scan", "--allow-degenerate", "--blocklist", str(path), str(FLAGGED_720))
    assert allowed.returncode == 1 and "warning" not in allowed.stderr


def degenerate_list(path: Path) -> Path:
    """Every hash of every featureless reference picture, and the sample list's entries."""
    rows = [
        f"{h.algo},{h.hex},{name}-{h.algo},careless,test,"
        for name, pixels in featureless_pictures()
        for h in hash_luma(Luma(pixels), list(ALGORITHMS))
    ]
    sample = SAMPLE_LIST.read_text().splitlines()[1:]
    path.write_text("\n".join(["algo,hash,id,list,category,label", *rows, *sample]) + "\n")
    return path


def test_a_featureless_clip_matches_no_degenerate_entry(tmp_path):
    """Black, white, grey and tinted slates, fades, gradients, vignettes, a noisy dark
    screen: no match, no decision, with all those entries loaded."""
    parts = featureless_only(2.0)
    clip = render(parts, tmp_path)
    listed = degenerate_list(tmp_path / "careless.csv")
    blocklist, refused = Blocklist.from_files([listed], allow_degenerate=True)
    assert refused == [] and sum(blocklist.degenerate_counts().values()) > 100
    matcher, policy = FrameMatcher(blocklist), StreamPolicy(Policy())
    frames = list(keyframes(clip, "benign", guard=EVERY_KEYFRAME))
    assert len(frames) == 2 * 2 * len(parts)  # two keyframes a second, 2 s of each kind
    for frame in frames:
        gated = matcher.stats.featureless
        matches = matcher(frame)
        assert matches == [] and policy.observe(matches, frame.pts_s) is None
        if not parts[segment_at(parts, frame.pts_s)].kind.startswith("fade"):
            assert matcher.stats.featureless - gated >= 2  # pHash and dHash not looked up
    assert policy.observe([], frames[-1].pts_s + 30) is None

    scan = ["scan", "--allow-degenerate", "--blocklist", str(listed), "--json"]
    assert streamguard(*scan, str(clip)).returncode == 0
    flagged = streamguard(*scan, str(FLAGGED_720))  # the same list does match real content
    assert flagged.returncode == 1 and flagged.stdout


def test_the_benign_benchmark_smoke_run(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "bench.bench_benign", "--smoke", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    results = json.loads((tmp_path / "benign.json").read_text())
    assert results["passed"] and results["run"]["now"]["matches"] == 0
    assert results["degenerate_loaded"] > 100
    before = results["run"]["before"]
    assert before["kill"] > 0  # without this change the same footage gets streams killed


def banded_ramp(tmp_path: Path) -> Path:
    """A ramp with two darker bands: a dHash a few bits from a gradient's, yet not one."""
    graph = (
        "color=black:s=1280x720:r=10:d=1,format=gray,"
        r"geq=lum='40+180*X/W-60*(between(X\,300\,369)+between(X\,820\,889))',"
        "loop=loop=-1:size=1,trim=duration=6,setpts=N/10/TB,format=yuv420p"
    )
    path = tmp_path / "banded.flv"
    command = ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-f", "lavfi"]
    command += ["-i", graph, "-c:v", "libx264", "-preset", "veryfast"]
    command += ["-x264-params", "keyint=10:min-keyint=10:scenecut=0", "-f", "flv", str(path)]
    subprocess.run(command, check=True, capture_output=True)
    return path


def degenerate_entry_for(clip: Path) -> str:
    """A dHash within 10 bits of the clip's frames and of a gradient's (all ones)."""
    (frame_hash,) = hash_luma(next(keyframes(clip, "banded")).luma, ["dhash"])
    bits = np.unpackbits(np.frombuffer(frame_hash.digest, np.uint8))
    zeros = np.flatnonzero(bits == 0)
    assert 10 < len(zeros) <= 20 and frame_hash.matchable
    assert not Featureless().of(["dhash"], [frame_hash.digest])[0]  # the frame is looked up
    bits[zeros[: len(zeros) - 10]] = 1
    entry = np.packbits(bits).tobytes()
    assert Featureless().of(["dhash"], [entry])[0]
    return entry.hex()


def test_run_redis_marks_degenerate_entries_which_decide_nothing(
    redis, nginx_rtmp: NginxRtmp, tmp_path
):
    clip = banded_ramp(tmp_path)
    listed = tmp_path / "list.csv"
    listed.write_text(
        "algo,hash,id,category\n"
        f"dhash,{degenerate_entry_for(clip)},banded,careless\n"
        "dhash,bc49b810b07464c8,flagged_01-dhash,test\n"  # streamguard/samples/blocklist.csv
    )
    assert "refused" in blocklist(redis, "import", str(listed)).stderr
    assert blocklist(redis, "import", "--allow-degenerate", str(listed)).returncode == 0
    # dHash may kill here, on one frame: only the entry's being degenerate stops it.
    policy = "\n[policy]\ninstant_distance = { pdq = 16, dhash = 10 }\nreview_only = []\n"
    config = tmp_path / "streamguard.toml"
    urls = {"banded": nginx_rtmp.rtmp_url("banded"), "flagged": nginx_rtmp.rtmp_url("flagged")}
    tables = "".join(f'\n[[streams]]\nid = "{i}"\nurl = "{u}"\n' for i, u in urls.items())
    config.write_text(f"processes = 1\n{FAST_RETRIES}{policy}{tables}")
    careless = 'streamguard_matches_total{algo="dhash",category="careless"}'
    with (
        publishing(clip, [urls["banded"]], loop=True),
        publishing(FLAGGED_720, [urls["flagged"]], loop=True),
    ):
        service = Service(["--config", str(config), "--redis", redis.url], tmp_path / "run.log")
        try:
            service.wait_for(lambda: service.events, 40, "the flagged stream killed")
            service.wait_for(lambda: service.metrics().get(careless, 0) >= 4, 20, "4 matches")
            metrics = service.metrics()
            streams = service.streams()
        finally:
            assert service.stop() == 0, service.log()
    assert [(e["stream_id"], e["action"], e["confirmations"]) for e in service.events] == [
        ("flagged", "kill", 1)  # an ordinary entry: one frame
    ]
    assert streams["banded"]["state"] == "watching"  # four matches, no decision
    assert metrics['streamguard_blocklist_degenerate_entries{status="loaded"}'] == 1
