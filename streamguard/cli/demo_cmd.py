"""``streamguard demo``: a bundled clip replayed in real time through the live decision path."""

import argparse
import json
import socket
import sys
from pathlib import Path

from streamguard.blocklist.memory import Blocklist
from streamguard.cli.console import EXIT_CLEAN
from streamguard.cli.frames import frames_of
from streamguard.cli.options import Subcommands
from streamguard.config.policy import Policy
from streamguard.config.sampling import Sampling
from streamguard.detect.matcher import FrameMatcher
from streamguard.detect.policy import StreamPolicy
from streamguard.errors import StreamguardError
from streamguard.ingest.replay import paced
from streamguard.samples import SAMPLES_DIR


def add_parser(commands: Subcommands) -> None:
    parser = commands.add_parser("demo", help="replay a bundled clip through the live pipeline")
    parser.add_argument("--samples", type=Path, default=SAMPLES_DIR, help=argparse.SUPPRESS)
    parser.set_defaults(handler=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:
    samples = args.samples
    clip = samples / "clips" / "flagged_720p.mp4"
    blocklist, _ = Blocklist.from_files([samples / "blocklist.csv"])  # none degenerate
    matcher = FrameMatcher(blocklist)
    worker_id = f"{socket.gethostname()}/demo"
    print(
        f"demo: replaying {clip.name} in real time against {len(blocklist)} sample blocklist "
        f"entries ({', '.join(blocklist.algos)}); events follow as JSON lines",
        file=sys.stderr,
    )
    detections = 0
    policy = StreamPolicy(Policy())
    for frame in frames_of(str(clip), Sampling(), pace=paced, stream_id="demo"):
        decision = policy.observe(matcher(frame), frame.received_at)
        if decision is None:
            continue
        best = decision.match
        event = best.event(
            decision.action,
            stream_url=str(clip),
            worker_id=worker_id,
            confirmations=decision.confirmations,
        )
        print(json.dumps(event.to_json()), flush=True)
        detections += 1
        print(
            f"demo: t={frame.pts_s:.1f} s matched '{best.hit.entry.label}' "
            f"({best.hash.algo} distance {best.hit.distance}/{best.hit.threshold}), "
            f"{decision.action} decided {best.latency_s * 1000:.0f} ms after its frame was read",
            file=sys.stderr,
        )
    stats = matcher.stats
    print(f"demo: {stats.frames} frames hashed, {detections} detections", file=sys.stderr)
    if not detections:
        raise StreamguardError(f"{clip}: the demo clip produced no detection")
    return EXIT_CLEAN
