"""vPDQ inputs, made by the reference tools (tests/data/vpdq/README.md), as blocklist entries."""

import json
from pathlib import Path

import numpy as np
import pytest

from streamguard.blocklist.formats import load_blocklist_file
from streamguard.blocklist.video_signal import video_id_of
from streamguard.errors import BlocklistFormatError
from streamguard.hashing.vpdq_signal import VpdqFrame, format_signal, parse_signal

DATA = Path(__file__).parents[1] / "data" / "vpdq"
HEX_A, HEX_B = "0f" * 32, "3c" * 32


def reference_frames(clip: str) -> list[tuple[str, int, float]]:
    """(hex, quality, ts) of each line of vpdq's own frame file."""
    lines = (DATA / f"{clip}.txt").read_text().split()
    return [(h, int(q), float(ts)) for _, q, h, ts in (line.split(",") for line in lines)]


def frames_of(entries) -> list[tuple[str, int, float]]:
    return [(e.digest.hex(), e.quality, round(e.ts, 3)) for e in entries]


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_vpdq_frame_file_is_one_video_named_after_the_file():
    entries = load_blocklist_file(DATA / "clean_360p.txt")
    assert frames_of(entries) == reference_frames("clean_360p")
    assert {(e.algo, e.video, e.list) for e in entries} == {("pdq", "clean_360p", "clean_360p")}
    assert len({e.id for e in entries}) == len(entries) == 10


def test_signal_line_agrees_with_the_frame_file_of_the_same_clip():
    entries = load_blocklist_file(DATA / "flagged_360p.signal.txt")
    assert frames_of(entries) == reference_frames("flagged_360p")
    signal = (DATA / "flagged_360p.signal.txt").read_text().split(" ", 1)[1]
    assert {e.video for e in entries} == {video_id_of(parse_signal(signal))}


def test_sample_data_lines_and_csv_give_the_same_entries():
    lines = load_blocklist_file(DATA / "te_sample_signals.txt")
    table = load_blocklist_file(DATA / "te_sample_dataset.csv")
    pictures = [e for e in table if not e.video]
    frames = [e for e in table if e.video]
    assert len(pictures) == 16 and len(frames) == 16 and len({e.video for e in frames}) == 1
    assert [e.ts for e in frames] == [float(s) for s in range(16)]
    assert {e.list for e in table} == {"Sample Signals"}
    assert {e.label for e in table} == {"INVESTIGATION_SEED"}
    assert [(e.id, e.video, e.ts) for e in lines] == [(e.id, e.video, e.ts) for e in table]


def test_older_json_keyed_by_frame_number():
    entries = load_blocklist_file(DATA / "clean_360p.old.json")
    assert frames_of(entries) == reference_frames("clean_360p")
    assert entries[0].video.startswith("v") and len(entries[0].video) == 17


def test_the_same_signal_respaced_gets_the_same_video_and_ids(tmp_path):
    frames = [VpdqFrame(bytes.fromhex(HEX_A), 100, 0.0), VpdqFrame(bytes.fromhex(HEX_B), 90, 1.0)]
    tight = json.dumps([f.compact for f in frames], separators=(",", ":")).upper()
    one = load_blocklist_file(write(tmp_path, "a.txt", f"vpdq {format_signal(frames)}\n"))
    two = load_blocklist_file(write(tmp_path, "a.te", f"VPDQ {tight.replace('E+', 'e+')}\n"))
    assert [(e.id, e.video) for e in one] == [(e.id, e.video) for e in two]


def test_low_quality_frames_are_not_indexed_and_repeats_are_kept_in_order(tmp_path):
    signal = [f"{HEX_A},100,0.0", f"{HEX_B},49,1.0", f"{HEX_A},100,2.0", f"{HEX_A},100,2.0"]
    entries = load_blocklist_file(write(tmp_path, "v.txt", f"vpdq {json.dumps(signal)}\n"))
    assert [(e.digest.hex(), e.ts) for e in entries] == [(HEX_A, 0.0), (HEX_A, 2.0)]


def test_one_frame_signal_mixed_with_pdq_lines(tmp_path):
    text = f'pdq {HEX_B}\nvpdq ["{HEX_A},100,0.0"]\n'
    entries = load_blocklist_file(write(tmp_path, "mixed.txt", text))
    assert [(e.digest.hex(), e.video != "") for e in entries] == [(HEX_B, False), (HEX_A, True)]


def test_json_line_with_a_vpdq_signal_and_an_id(tmp_path):
    record = {"algo": "vpdq", "hash": [f"{HEX_A},100,0.0", f"{HEX_B},80,1.0"], "id": "clip-7"}
    entries = load_blocklist_file(write(tmp_path, "v.jsonl", json.dumps(record) + "\n"))
    assert {e.video for e in entries} == {"clip-7"} and [e.quality for e in entries] == [100, 80]


def test_an_hour_long_signal_on_one_line(tmp_path):
    # Past 999 s ThreatExchange's 3 digits give ten frames one time (1.0e+03): all kept.
    signal = [f"{i:064x},100,{float(i):.3}" for i in range(3600)]
    path = write(tmp_path, "hour.txt", f"pdq {HEX_B}\nvpdq {json.dumps(signal)}\npdq {HEX_A}\n")
    assert len(path.read_text()) > 2 * (1 << 17)  # longer than two read blocks
    entries = load_blocklist_file(path)
    assert len(entries) == 3602 and entries[-1].digest.hex() == HEX_A


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        (f'vpdq ["{HEX_A},100,0.0", "{HEX_B[:-1]},100,1.0"]', "vpdq frame 2: hash must be 64"),
        (f'vpdq ["{HEX_A},101,0.0"]', "vpdq frame 1: quality must be"),
        (f'vpdq ["{HEX_A},100,-1"]', "vpdq frame 1: time must be"),
        (f'vpdq ["{HEX_A},100"]', 'vpdq frame 1: expected "hex,quality,ts"'),
        (f'vpdq ["{HEX_A},100,0.0"', "vpdq signal is not valid JSON"),
        ("vpdq []", "vpdq signal must be a non-empty JSON list"),
    ],
)
def test_malformed_signal_is_one_line_naming_file_line_and_problem(tmp_path, line, problem):
    path = write(tmp_path, "bad.txt", f"pdq {HEX_B}\n{line}\n")
    with pytest.raises(BlocklistFormatError) as caught:
        load_blocklist_file(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: line 2: {problem}")
    assert HEX_A not in message and HEX_B[:16] not in message and "\n" not in message


def test_malformed_older_json_names_the_frame(tmp_path):
    record = {"0": {"quality": 100, "hash": HEX_A, "timestamp": 0.0}, "30": {"quality": 100}}
    path = write(tmp_path, "old.json", json.dumps(record) + "\n")
    with pytest.raises(BlocklistFormatError, match=r"line 1: vpdq frame 30: hash must be"):
        load_blocklist_file(path)


def test_dataset_csv_vpdq_row_with_bad_frame(tmp_path):
    header = "signal_type,signal_str,collab,category,tags\n"
    row = 'vpdq,"[""' + HEX_A[:10] + ',100,0.0""]",c,POSITIVE_CLASS,\n'
    with pytest.raises(BlocklistFormatError, match=r"line 2: vpdq frame 1: hash must be"):
        load_blocklist_file(write(tmp_path, "d.csv", header + row))


@pytest.mark.parametrize(
    ("fps", "every"),
    [(30.0, 30), (25.0, 25), (30000 / 1001, 29), (24000 / 1001, 23)],
)
def test_times_threatexchange_rounded_are_put_back(tmp_path, fps, every):
    """An hour of vPDQ as ThreatExchange writes it: past 1,000 s ten frames share a
    written time; imported, each frame has its own again (vpdq's N / fps)."""
    times = [float(np.float32(n / fps)) for n in range(0, round(3600 * fps), every)]
    digests = [i.to_bytes(32, "big") for i in range(len(times))]
    frames = [VpdqFrame(d, 100, t) for d, t in zip(digests, times, strict=True)]
    written = parse_signal(format_signal(frames))
    assert len({f.ts_s for f in written}) < len(times) * 0.6  # what rounding leaves
    path = write(tmp_path, "hour.txt", f"vpdq {format_signal(frames)}\n")
    entries = load_blocklist_file(path)
    assert len(entries) == len(times)
    errors = [abs(e.ts - t) for e, t in zip(entries, times, strict=True)]
    assert max(errors) < 0.01


def test_times_that_do_not_follow_one_step_are_kept_as_written(tmp_path):
    """An edited signal (a jump from 50 s to 1,500 s): no one step fits, nothing is
    recomputed."""
    times = [0.0, 1.0, 2.0, 50.0, 1500.0, 1501.0]
    frames = [VpdqFrame(i.to_bytes(32, "big"), 100, t) for i, t in enumerate(times)]
    path = write(tmp_path, "edited.txt", f"vpdq {format_signal(frames)}\n")
    assert [e.ts for e in load_blocklist_file(path)] == [0.0, 1.0, 2.0, 50.0, 1500.0, 1500.0]
