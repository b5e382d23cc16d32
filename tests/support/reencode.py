"""A clip encoded otherwise: another frame size and other encoder settings, as a
re-stream of the same footage would be (incident tests and bench_incident)."""

from fractions import Fraction
from pathlib import Path

import av


def reencoded(source: Path, target: Path, width: int, height: int, gop: int, crf: int) -> Path:
    """``source`` at another size and with other encoder settings, as an FLV file."""
    with av.open(str(source)) as reader, av.open(str(target), "w", format="flv") as writer:
        stream = writer.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.time_base = Fraction(1, 30)
        stream.options = {
            "crf": str(crf),
            "preset": "veryfast",
            "g": str(gop),
            "keyint_min": str(gop),
            "sc_threshold": "0",
            "bf": "0",
        }
        for number, frame in enumerate(reader.decode(video=0)):
            scaled = frame.reformat(width=width, height=height, format="yuv420p")
            scaled.pts, scaled.time_base = number, Fraction(1, 30)
            writer.mux(stream.encode(scaled))
        writer.mux(stream.encode(None))
    return target
