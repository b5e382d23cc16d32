"""Hostile media, made at test time from the committed sample clips.

Byte flips and cuts work on whole files. The rest rewrites container or codec fields
directly, because muxers refuse to write what an attacker can: an FLV tag rewriter for
timestamps and mid-stream changes, and an H.264 SPS rewriter for the declared picture
size (the slices stay those of the sample, so a decoder that believes the SPS
allocates pictures of the declared size).
"""

import random
import re
import struct
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from ..conftest import SAMPLES

CLIPS = SAMPLES / "clips"
FLAGGED_720 = CLIPS / "flagged_720p.mp4"  # the flagged picture is the keyframe at 4 s
FLAGGED_360 = CLIPS / "flagged_360p.flv"  # likewise, at 4 s
CLEAN_720 = CLIPS / "clean_720p.mp4"
CLEAN_360 = CLIPS / "clean_360p.flv"
BLOCKLIST = SAMPLES / "blocklist.csv"
FORMATS = {"flv": "flv", "ts": "mpegts", "mp4": "mp4", "mkv": "matroska", "nut": "nut"}


# -- whole files ---------------------------------------------------------------------


def flipped(data: bytes, flips: int, seed: int) -> bytes:
    """``data`` with ``flips`` single bits inverted at seeded random offsets."""
    rng = random.Random(seed)
    out = bytearray(data)
    for _ in range(flips):
        offset = rng.randrange(len(out))
        out[offset] ^= 1 << rng.randrange(8)
    return bytes(out)


def remux(source: Path, target: Path, transform: Callable | None = None) -> Path:
    """Stream-copy the video of ``source`` into ``target`` (format from its suffix).

    ``transform(packet) -> packets`` may rewrite, drop or add packets on the way.
    """
    with (
        av.open(str(source)) as reader,
        av.open(str(target), "w", format=FORMATS[target.suffix[1:]]) as writer,
    ):
        video = reader.streams.video[0]
        out = writer.add_stream_from_template(video)
        for packet in reader.demux(video):
            if packet.dts is None:
                continue
            for rewritten in transform(packet) if transform else [packet]:
                rewritten.stream = out
                writer.mux(rewritten)
    return target


def copy_packet(packet: av.Packet, data: bytes | None = None) -> av.Packet:
    """A packet with the timing and flags of ``packet`` and ``data`` (its own by default)."""
    new = av.Packet(bytes(packet) if data is None else data)
    new.pts, new.dts, new.time_base = packet.pts, packet.dts, packet.time_base
    new.is_keyframe = packet.is_keyframe
    return new


def with_empty_packets(source: Path, target: Path, after: tuple[int, ...] = (10, 40)) -> Path:
    """``source`` with a zero-size video packet after the given packet numbers (NUT keeps them)."""
    count = 0

    def transform(packet: av.Packet) -> Iterator[av.Packet]:
        nonlocal count
        count += 1
        yield packet
        if count in after:
            empty = av.Packet(0)
            empty.pts = empty.dts = packet.dts + 1
            empty.time_base = packet.time_base
            yield empty

    return remux(source, target, transform)


def audio_only(target: Path, seconds: float = 3.0) -> Path:
    """A sine tone in AAC: a container with no video stream."""
    rate = 48_000
    with av.open(str(target), "w", format=FORMATS[target.suffix[1:]]) as writer:
        stream = writer.add_stream("aac", rate=rate)
        t = np.arange(int(seconds * rate)) / rate
        samples = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
        for start in range(0, len(samples), 1024):
            frame = av.AudioFrame.from_ndarray(
                samples[None, start : start + 1024], format="fltp", layout="mono"
            )
            frame.sample_rate, frame.pts = rate, start
            writer.mux(stream.encode(frame))
        writer.mux(stream.encode(None))
    return target


# -- FLV tags ------------------------------------------------------------------------


@dataclass
class Tag:
    kind: int  # 8 audio, 9 video, 18 script data
    timestamp_ms: int
    body: bytes


def read_flv(path: Path) -> tuple[bytes, list[Tag]]:
    """The FLV header and the tags of ``path``."""
    data = path.read_bytes()
    assert data[:3] == b"FLV", path
    header = data[: struct.unpack(">I", data[5:9])[0]]
    tags, offset = [], len(header) + 4
    while offset + 11 <= len(data):
        size = int.from_bytes(data[offset + 1 : offset + 4], "big")
        timestamp = int.from_bytes(data[offset + 4 : offset + 7], "big") | data[offset + 7] << 24
        tags.append(Tag(data[offset], timestamp, data[offset + 11 : offset + 11 + size]))
        offset += 11 + size + 4
    return header, tags


def write_flv(path: Path, header: bytes, tags: list[Tag]) -> Path:
    out = bytearray(header) + bytes(4)
    for tag in tags:
        stamp = tag.timestamp_ms & 0xFFFFFFFF
        out += bytes([tag.kind]) + len(tag.body).to_bytes(3, "big")
        out += (stamp & 0xFFFFFF).to_bytes(3, "big") + bytes([stamp >> 24]) + bytes(3)
        out += tag.body + (11 + len(tag.body)).to_bytes(4, "big")
    path.write_bytes(bytes(out))
    return path


def retimed_flv(source: Path, target: Path, timestamp: Callable[[int], int]) -> Path:
    """``source`` with each tag's timestamp (ms) replaced by ``timestamp(old)``."""
    header, tags = read_flv(source)
    return write_flv(target, header, [Tag(t.kind, timestamp(t.timestamp_ms), t.body) for t in tags])


def concatenated_flv(first: Path, second: Path, target: Path) -> Path:
    """``second`` appended to ``first`` on one timeline, as one stream whose codec
    configuration (an AVC sequence header) changes where ``second`` starts."""
    header, tags = read_flv(first)
    start = max(tag.timestamp_ms for tag in tags) + 33
    _, more = read_flv(second)
    tags += [Tag(t.kind, t.timestamp_ms + start, t.body) for t in more if t.kind != 18]
    return write_flv(target, header, tags)


# -- H.264 SPS ------------------------------------------------------------------------

_HIGH_PROFILES = {100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135}


class _BitReader:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def u(self, bits: int) -> int:
        value = 0
        for _ in range(bits):
            value = value << 1 | (self.data[self.pos >> 3] >> (7 - (self.pos & 7))) & 1
            self.pos += 1
        return value

    def ue(self) -> int:
        zeros = 0
        while self.u(1) == 0:
            zeros += 1
        return (1 << zeros) - 1 + self.u(zeros)


class _BitWriter:
    def __init__(self) -> None:
        self.bits: list[int] = []

    def u(self, bits: int, value: int) -> None:
        self.bits += [(value >> (bits - 1 - i)) & 1 for i in range(bits)]

    def ue(self, value: int) -> None:
        length = (value + 1).bit_length()
        self.u(length - 1, 0)
        self.u(length, value + 1)

    def data(self) -> bytes:
        bits = self.bits + [0] * (-len(self.bits) % 8)
        return bytes(
            int("".join(map(str, bits[i : i + 8])), 2) for i in range(0, len(bits), 8)
        ).rstrip(b"\0")


def _unescape(payload: bytes) -> bytes:
    return re.sub(b"\x00\x00\x03", b"\x00\x00", payload)


def _escape(rbsp: bytes) -> bytes:
    out, zeros = bytearray(), 0
    for byte in rbsp:
        if zeros >= 2 and byte <= 3:
            out.append(3)
            zeros = 0
        out.append(byte)
        zeros = zeros + 1 if byte == 0 else 0
    return bytes(out)


def resized_sps(nal: bytes, width: int, height: int) -> bytes:
    """An SPS NAL unit (header byte first) declaring ``width`` x ``height`` (multiples of 16).

    Every other field is copied bit for bit; the frame cropping of the original stays.
    """
    reader, writer = _BitReader(_unescape(nal[1:])), _BitWriter()

    def copy(bits: int = 0) -> int:
        """Copy a ``bits``-bit field, or an Exp-Golomb one when ``bits`` is 0."""
        if bits:
            value = reader.u(bits)
            writer.u(bits, value)
        else:
            value = reader.ue()
            writer.ue(value)
        return value

    profile = copy(8)
    copy(16)  # constraint flags, level
    copy()  # seq_parameter_set_id
    if profile in _HIGH_PROFILES:
        if copy() == 3:  # chroma_format_idc
            copy(1)
        for bits in (0, 0, 1):  # bit depths, transform bypass
            copy(bits)
        assert copy(1) == 0, "SPS scaling matrices are not supported"
    copy()  # log2_max_frame_num_minus4
    poc_type = copy()
    assert poc_type != 1, "pic_order_cnt_type 1 is not supported"
    if poc_type == 0:
        copy()
    copy()  # max_num_ref_frames
    copy(1)  # gaps_in_frame_num_allowed_flag
    reader.ue()  # pic_width_in_mbs_minus1
    reader.ue()  # pic_height_in_map_units_minus1
    writer.ue(width // 16 - 1)
    writer.ue(height // 16 - 1)
    rbsp_bits = len(reader.data) * 8
    while reader.pos < rbsp_bits:
        copy(1)
    return nal[:1] + _escape(writer.data())


def _with_resized_sps(annex_b: bytes, width: int, height: int) -> bytes:
    """Annex B data with every SPS resized."""

    def replace(match: re.Match) -> bytes:
        return match[1] + resized_sps(match[2], width, height)

    # An SPS runs from its start code to the next start code (or the end).
    return re.sub(
        rb"(\x00\x00\x01)([\x27\x47\x67].*?)(?=\x00?\x00\x00\x01|\Z)",
        replace,
        annex_b,
        flags=re.DOTALL,
    )


def _with_resized_avcc(avcc: bytes, width: int, height: int) -> bytes:
    """An avcC record (MP4, FLV, Matroska) whose one SPS declares another size."""
    assert avcc[0] == 1 and avcc[5] & 0x1F == 1, "expected avcC with one SPS"
    length = int.from_bytes(avcc[6:8], "big")
    sps = resized_sps(avcc[8 : 8 + length], width, height)
    return avcc[:6] + len(sps).to_bytes(2, "big") + sps + avcc[8 + length :]


def declaring_size(source: Path, target: Path, width: int, height: int) -> Path:
    """``source`` (H.264) remuxed so that its SPS declares ``width`` x ``height``."""
    fmt = FORMATS[target.suffix[1:]]
    with av.open(str(source)) as reader, av.open(str(target), "w", format=fmt) as writer:
        video = reader.streams.video[0]
        out = writer.add_stream_from_template(video)
        packets = (packet for packet in reader.demux(video) if packet.dts is not None)
        if fmt == "mpegts":  # parameter sets travel in the packets
            annex_b = av.BitStreamFilterContext("h264_mp4toannexb", video)
            packets = (
                copy_packet(filtered, _with_resized_sps(bytes(filtered), width, height))
                for packet in packets
                for filtered in annex_b.filter(packet)
            )
        else:  # in the codec configuration record
            out.codec_context.extradata = _with_resized_avcc(
                video.codec_context.extradata, width, height
            )
        for packet in packets:
            packet.stream = out
            writer.mux(packet)
    return target


# -- HLS --------------------------------------------------------------------------------


def hls_segments(
    source: Path, directory: Path, prefix: str, *, offset_s: float = 0.0
) -> list[Path]:
    """``source`` cut into 2 s MPEG-TS segments (stream copy) named ``prefix``NN.ts, with
    ``offset_s`` added to every timestamp."""
    directory.mkdir(parents=True, exist_ok=True)
    options = {
        "hls_time": "2",
        "hls_list_size": "0",
        "hls_segment_filename": str(directory / f"{prefix}%02d.ts"),
    }
    playlist = directory / f"{prefix}.m3u8"
    with av.open(str(source)) as reader, av.open(str(playlist), "w", "hls", options=options) as out:
        video = reader.streams.video[0]
        stream = out.add_stream_from_template(video)
        shift = round(offset_s / video.time_base)
        for packet in reader.demux(video):
            if packet.dts is None:
                continue
            packet.pts, packet.dts = packet.pts + shift, packet.dts + shift
            packet.stream = stream
            out.mux(packet)
    playlist.unlink()
    return sorted(directory.glob(f"{prefix}[0-9][0-9].ts"))


def media_playlist(segments: list[str], *, end: bool = True, sequence: int = 0) -> str:
    """An HLS media playlist of 2 s segments (URIs as given)."""
    lines = ["#EXTM3U", "#EXT-X-VERSION:3", "#EXT-X-TARGETDURATION:2"]
    lines.append(f"#EXT-X-MEDIA-SEQUENCE:{sequence}")
    for uri in segments:
        lines += ["#EXTINF:2.0,", uri]
    if end:
        lines.append("#EXT-X-ENDLIST")
    return "\n".join(lines) + "\n"


# -- live publishing -------------------------------------------------------------------


def publish_with_clock(source: Path, url: str, rate: float, stop: threading.Event) -> None:
    """Publish ``source`` (video, looped) to ``url`` over RTMP in real time, with
    timestamps that run at ``rate`` times the wall clock: a publisher lying about time."""
    with av.open(url, "w", format="flv") as writer:
        out = None
        started, loop_start_s = time.monotonic(), 0.0
        while not stop.is_set():
            with av.open(str(source)) as reader:
                video = reader.streams.video[0]
                if out is None:
                    out = writer.add_stream_from_template(video)
                tb = video.time_base
                last_s = 0.0
                for packet in reader.demux(video):
                    if packet.dts is None:
                        continue
                    wall_s = loop_start_s + float(packet.dts * tb)
                    last_s = max(last_s, float((packet.pts + (packet.duration or 0)) * tb))
                    if stop.wait(max(0.0, started + wall_s - time.monotonic())):
                        return
                    offset = round(loop_start_s / tb)
                    packet.pts = round((packet.pts + offset) * rate)
                    packet.dts = round((packet.dts + offset) * rate)
                    packet.stream = out
                    writer.mux(packet)
                loop_start_s += last_s
