"""The reference vPDQ tools, run by the interpreter that has them (``--vpdq-python``):
never imported by streamguard nor by the benchmarks, which run it as a script.

``hash VIDEO``: one JSON line per feature of ``vpdq.computeHash`` at one hash per
second, ``[frame_number, quality, hex, timestamp]``.
``match QUERY COMPARED``: ThreatExchange's brute-force vPDQ matcher on two files of
features (JSON lists of "hex,quality,timestamp", as ``vpdq_to_json`` writes them), with
its own quality and distance thresholds; prints one JSON object.
"""

import json
import sys


def hash_video(path: str) -> None:
    import vpdq

    for feature in vpdq.computeHash(path, seconds_per_hash=1, thread_count=1):
        row = [feature.frame_number, feature.quality, feature.hex, feature.timestamp]
        print(json.dumps(row))


def match(query_path: str, compared_path: str) -> None:
    from threatexchange.extensions.vpdq.vpdq_brute_matcher import match_VPDQ_hash_brute
    from threatexchange.extensions.vpdq.vpdq_util import (
        VPDQ_DISTANCE_THRESHOLD,
        VPDQ_QUALITY_THRESHOLD,
        json_to_vpdq,
    )

    with open(query_path) as query, open(compared_path) as compared:
        found = match_VPDQ_hash_brute(
            json_to_vpdq(query.read()),
            json_to_vpdq(compared.read()),
            VPDQ_QUALITY_THRESHOLD,
            VPDQ_DISTANCE_THRESHOLD,
        )
    result = {
        "query_percent": found.query_match_percent,
        "compared_percent": found.compared_match_percent,
        "quality_threshold": VPDQ_QUALITY_THRESHOLD,
        "distance_threshold": VPDQ_DISTANCE_THRESHOLD,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    if sys.argv[1] == "hash":
        hash_video(sys.argv[2])
    else:
        match(sys.argv[2], sys.argv[3])
