"""Render the "## Faults" section of docs/reliability.md from a run of tests/faults.

    python -m pytest tests/faults          # writes tests/faults/out/faults.json
    python -m tests.faults.report          # prints the section
    python -m tests.faults.report --write  # replaces it in docs/reliability.md

Only the "## Faults" section is replaced (up to the next "## " heading); the rest of
the file is left as it is. ``$STREAMGUARD_FAULTS_OUT`` or ``--json`` names another
results file.
"""

import argparse
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

from .conftest import DEFAULT_OUT, OUT_VARIABLE

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "reliability.md"
HEADING = "## Faults"
# Rows in this order; tests not listed come last.
ORDER = [
    "test_redis_killed_and_restarted",
    "test_broker_killed_and_restarted",
    "test_broker_killed_with_acknowledged_events_unsaved",
    "test_nginx_killed_and_restarted",
    "test_broadcast_restarted_within_a_second",
    "test_worker_process_fails[killed]",
    "test_main_process_killed",
    "test_redis_hangs",
    "test_broker_hangs",
    "test_nginx_hangs",
    "test_worker_process_fails[hung]",
    "test_worker_process_hangs_at_its_start",
    "test_event_loop_blocked",
    "test_outbox_disk_full[1]",
    "test_outbox_disk_full[2]",
    "test_stream_host_does_not_resolve",
    "test_enforce_killed_between_receipt_and_commit",
]

INTRO = """\
Each fault is injected by `tests/faults/` into a running system made of real parts:
redis-server (the blocklist), mosquitto (events), nginx-rtmp fed by three encoders
that reconnect by themselves (two broadcasts showing a flagged picture at 4 s of
every 10 s loop, one clean), `streamguard run` with the policy set to make every
loop a new incident (a kill every 10 s per flagged stream), and a platform that
subscribes with `mosquitto_sub` in a persistent session. A test waits for a kill
delivered on every flagged stream, injects the fault (timed against the streams so
that a flagged frame comes during or right after it), and then requires:

- **detection kept**: a kill delivered for a flagged frame shown after the fault
  began;
- **events lost**: every kill the run log shows as decided (each decision line names
  its `event_id`) is received by the platform, counted by decision: a kill that got
  the id of an earlier one is lost to a platform deduplicating on `event_id`;
- the other streams watched throughout (no reconnect, frames sampled meanwhile),
  the service up, `streamguard_internal_errors_total` 0, and the metric and log
  line named in the table.

Timeouts are the short ones of the test configuration: `worker_timeout_s = 3`,
`[redis] timeout_s = 1`, `[mqtt] timeout_s = 2` and `keepalive_s = 5`,
`[ingest] open_timeout_s = 4`, `read_timeout_s = 2`, reconnect back-off 0.5-2 s. The
table below is written by `python -m tests.faults.report --write` from the results
of the run it names; `make test` runs the suite in CI.

One fault is past detection and has its own scene: `streamguard enforce` killed
between receiving a kill and storing it runs enforce against mosquitto and
nginx-rtmp, without `run`; the test publishes the kill as `run` does. Its
*detection kept* is n/a, and its *events lost* counts kills published (decided)
against streams ended and keys refused (received).
"""

NOTES = """\
Notes on the figures:

- *Copies* are events received more than once with the same `event_id` (delivery is
  at least once, [events.md](events.md#delivery-and-deduplication)): during a broker
  hang, the kill whose PUBACK never came is sent again after the reconnect, and the
  broker also delivers the first copy once it runs again.
- *Lost* counts kills by decision, as a platform that deduplicates on `event_id` acts
  on them: a kill never delivered, and a kill delivered under the id of an earlier one
  (*repeated ids*, which that platform drops as a copy). Before issue 19 a broadcast
  restarted within the same 10 s step of its start got the id of the kill before it
  (the nginx-rtmp crash showed 2); event ids now name the broadcast by its timeline
  ([events.md](events.md#event-ids)), and every fault asserts none is repeated.
- A broker acknowledges (PUBACK) before it writes to disk: mosquitto saves its
  persistence file every `autosave_interval` (deploy/mosquitto.conf: 1, so at most
  2 s apart). Events acknowledged but neither saved nor delivered when it is killed
  are lost by the broker: the unsaved-events test kills it within 0.1 s of the
  PUBACKs, with the platform offline, and without the re-send after the reconnect
  it lost both kills. streamguard publishes again what the broker acknowledged in the
  `resend_after_reconnect_s` (10 s) before its last PUBACK; those copies are among the
  *copies* counted.
- `enforce` acknowledges a kill only once it is stored
  ([enforcement.md](enforcement.md#failure-behaviour)). With the acknowledgement
  on receipt, as before, the same test fails: the broker forgets the kill and the
  stream airs on.
- While the outbox's disk is full, events wait in memory: a crash of the process in
  that window would lose them. Under `--processes N` the workers' metrics files are
  no longer in `state_dir` but in a directory under `$TMPDIR`: on the full disk, a
  restarted worker died of SIGBUS while importing the metrics module, every time.
- The event loop blocked for good: the kill whose decision line blocked the loop was
  already in the outbox; the next instance delivered it. Its line was never written,
  so the platform received one more kill than the log shows as decided (counted as a
  copy above).
"""


def load(path: Path) -> dict[str, Any]:
    run = json.loads(path.read_text())
    names = {name: n for n, name in enumerate(ORDER)}
    run["faults"].sort(key=lambda row: names.get(row["test"].rpartition("::")[2], len(ORDER)))
    return run


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _yes_no(value: bool | None) -> str:
    return {True: "yes", False: "**no**", None: "not reached"}[value]


def _detection(row: dict[str, Any]) -> str:
    return _yes_no(row["detection_kept"]) if row.get("detection_applies", True) else "n/a"


def _lost(row: dict[str, Any]) -> str:
    if row["events_lost"] is None:
        return "not reached"
    lost = f"**{row['events_lost']}**" if row["events_lost"] else "0"
    detail = f"{row['events_decided']} decided, {row['events_delivered']} received"
    if row.get("duplicates"):
        detail += f", {_count(row['duplicates'], 'copy', 'copies')} among them"
    if row.get("reused_ids"):
        detail += f", {_count(row['reused_ids'], 'repeated id', 'repeated ids')}"
    return f"{lost} ({detail})"


def _count(n: int, one: str, more: str) -> str:
    return f"{n} {one if n == 1 else more}"


def render(run: dict[str, Any]) -> str:
    rows = run["faults"]
    failed = [row["test"] for row in rows if row["outcome"] != "passed"]
    lines = [
        HEADING,
        "",
        INTRO,
        f"Run of {run['started_at']} on commit `{run['commit']}` ({run['host']}, "
        f"Python {run['python']}): {len(rows)} faults, "
        f"{sum(row['duration_s'] for row in rows):.0f} s of tests, "
        + (f"**{len(failed)} failed**: {', '.join(failed)}." if failed else "all passed."),
        "",
        "| fault | what the system did | detection kept | events lost |",
        "| --- | --- | --- | --- |",
    ]
    for row in rows:
        did = "; ".join(row["did"]) or "—"
        if row["outcome"] != "passed":
            did += f" (**test {row['outcome']}**)"
        lines.append(f"| {_cell(row['fault'])} | {_cell(did)} | {_detection(row)} | {_lost(row)} |")
    return "\n".join(lines) + "\n\n" + NOTES


def replace_section(document: str, section: str) -> str:
    """``document`` with its "## Faults" section replaced by ``section`` (or added)."""
    pattern = re.compile(rf"^{re.escape(HEADING)}\n.*?(?=^## |\Z)", re.M | re.S)
    if pattern.search(document):
        return pattern.sub(lambda _: section + "\n", document, count=1).rstrip("\n") + "\n"
    return document.rstrip("\n") + "\n\n" + section


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    default = Path(os.environ.get(OUT_VARIABLE) or DEFAULT_OUT)
    parser.add_argument("--json", type=Path, default=default, help=f"default: {default}")
    parser.add_argument("--write", nargs="?", type=Path, const=DOC, help=f"default: {DOC}")
    args = parser.parse_args(argv)
    section = render(load(args.json))
    if args.write is None:
        sys.stdout.write(section)
        return 0
    if args.write.exists():
        document = args.write.read_text()
    else:
        document = "# Reliability\n\nHow streamguard behaves when things go wrong, measured.\n"
    args.write.write_text(replace_section(document, section))
    return 0


if __name__ == "__main__":
    sys.exit(main())
