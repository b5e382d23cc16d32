"""Mosquitto's saves: what each autosave setting costs, and what a kill -9 loses (issue 19).

Mosquitto 2.0 acknowledges a QoS 1 message (PUBACK) before it saves, and each save
writes its whole database again. For each persistence setting, against a real Debian
mosquitto on loopback:

1. throughput: S persistent subscribers subscribe and go offline (as enforce does while
   it restarts), so every message is queued S times; N QoS 1 messages of a kill event's
   size are published one at a time, each after the previous PUBACK, as streamguard's
   sink does. Messages/s, the broker's CPU seconds and the bytes it wrote (``wchar``).
2. window: one message to an offline persistent subscriber, the broker killed (kill -9)
   D ms after its PUBACK and started again: was the message kept, and did the CONNACK
   tell the publisher its session was present (session_present)?

The settings run interleaved, ``--repeat`` times; the best run of each counts.
Writes bench/out/broker.json and bench/out/broker.md.
"""

import argparse
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho

from bench import parse
from bench.processes import cpu_s
from bench.report import fmt, header, publish, saved, table
from tests.support.mosquitto import Mosquitto, deploy_persistence

SETTINGS = {
    "autosave_interval 30 (shipped before)": ["persistence true", "autosave_interval 30"],
    "autosave_interval 1 (every 1-2 s)": ["persistence true", "autosave_interval 1"],
    "autosave_on_changes, every change": [
        "persistence true",
        "autosave_on_changes true",
        "autosave_interval 1",
    ],
}
PAYLOAD = b"k" * 550  # a kill event's JSON is about 550 bytes
TOPIC = "streamguard/v1/kill/bench"
SMOKE = {"messages": 200, "subscribers": 1, "repeat": 1, "delays_ms": [0.0, 1500.0]}


def connect(
    port: int, client_id: str, received: list[bytes] | None = None
) -> tuple[paho.Client, dict[str, bool]]:
    """A persistent-session MQTT 3.1.1 client, connected, with the payloads it receives
    appended to ``received``; and its CONNACK flags."""
    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False)
    if received is not None:
        client.on_message = lambda _c, _u, message: received.append(message.payload)
    connack: dict[str, bool] = {}

    def connected(_c: Any, _u: Any, flags: Any, reason: Any, _p: Any) -> None:
        connack["session_present"] = bool(flags.session_present)

    client.on_connect = connected
    client.connect("127.0.0.1", port)
    client.loop_start()
    deadline = time.monotonic() + 10
    while "session_present" not in connack:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{client_id}: no CONNACK within 10 s")
        time.sleep(0.01)
    return client, connack


def close(client: paho.Client) -> None:
    client.disconnect()
    client.loop_stop()


def offline_subscribers(port: int, count: int) -> None:
    """``count`` persistent sessions subscribed to TOPIC, then disconnected."""
    for number in range(count):
        client, _ = connect(port, f"bench-sub-{number}")
        client.subscribe(TOPIC, qos=1)[1]
        time.sleep(0.2)  # SUBACK
        close(client)


def wchar(pid: int) -> int:
    """Bytes the process has written (files and sockets)."""
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        if line.startswith("wchar:"):
            return int(line.split()[1])
    return 0


def throughput(work: Path, persistence: list[str], messages: int, subscribers: int) -> dict:
    shutil.rmtree(work, ignore_errors=True)
    broker = Mosquitto(work, persistence=persistence)
    broker.start()
    try:
        assert broker.process is not None
        pid = broker.process.pid
        offline_subscribers(broker.port, subscribers)
        publisher, _ = connect(broker.port, "bench-pub")
        cpu, written, start = cpu_s(pid), wchar(pid), time.perf_counter()
        for _ in range(messages):
            publisher.publish(TOPIC, PAYLOAD, qos=1).wait_for_publish(10)
        elapsed = time.perf_counter() - start
        cpu, written = cpu_s(pid) - cpu, wchar(pid) - written
        close(publisher)
        database = work / "mosquitto.db"
        time.sleep(2.5)  # a last time-based save
        size = database.stat().st_size if database.exists() else 0
    finally:
        broker.stop()
    return {
        "msgs_per_s": round(messages / elapsed, 1),
        "broker_cpu_ms_per_msg": round(cpu * 1000 / messages, 4),
        "broker_written_kb_per_msg": round(written / 1024 / messages, 1),
        "database_mb": round(size / 2**20, 2),
    }


def window(work: Path, persistence: list[str], delay_ms: float) -> dict[str, Any]:
    """Was a message acked ``delay_ms`` before a kill -9 kept; session_present after."""
    shutil.rmtree(work, ignore_errors=True)
    broker = Mosquitto(work, persistence=persistence)
    broker.start()
    try:
        offline_subscribers(broker.port, 1)
        publisher, _ = connect(broker.port, "bench-pub")
        time.sleep(2.5)  # the sessions saved, as on a broker that has run a while
        publisher.publish(TOPIC, b"acked", qos=1).wait_for_publish(10)
        time.sleep(delay_ms / 1000)
        broker.kill()
        publisher.loop_stop()
        broker.start()
        publisher, connack = connect(broker.port, "bench-pub")
        received: list[bytes] = []
        subscriber, _ = connect(broker.port, "bench-sub-0", received)
        time.sleep(0.5)
        close(subscriber)
        close(publisher)
    finally:
        broker.stop()
    return {"delay_ms": delay_ms, "kept": bool(received), **connack}


def measure(args: argparse.Namespace) -> dict[str, Any]:
    work = args.out / "broker"
    runs: dict[str, list[dict]] = {name: [] for name in SETTINGS}
    for _ in range(args.repeat):
        for name, persistence in SETTINGS.items():
            runs[name].append(throughput(work, persistence, args.messages, args.subscribers))
            print(f"{name}: {runs[name][-1]}", flush=True)
    best = {name: max(found, key=lambda r: r["msgs_per_s"]) for name, found in runs.items()}
    windows = {
        name: [window(work, persistence, delay) for delay in args.delays_ms]
        for name, persistence in SETTINGS.items()
    }
    shutil.rmtree(work, ignore_errors=True)
    return {
        **header(args),
        "mosquitto": _version(),
        "shipped": deploy_persistence(),
        "throughput": best,
        "runs": runs,
        "windows": windows,
    }


def _version() -> str:
    done = subprocess.run(["mosquitto", "-h"], capture_output=True, text=True)
    return done.stdout.split("\n", 1)[0].removeprefix("mosquitto version ")


def markdown(results: dict[str, Any]) -> str:
    args = results["args"]
    base = results["throughput"][next(iter(SETTINGS))]
    rows = [
        [
            name,
            found["msgs_per_s"],
            f"{found['msgs_per_s'] / base['msgs_per_s']:.2f}x",
            found["broker_cpu_ms_per_msg"],
            found["broker_written_kb_per_msg"],
            found["database_mb"],
        ]
        for name, found in results["throughput"].items()
    ]
    delays = [f"{fmt(d)} ms" for d in args["delays_ms"]]
    kept = [
        [name, *("kept" if w["kept"] else "**lost**" for w in found)]
        for name, found in results["windows"].items()
    ]
    present = {
        name: {w["session_present"] for w in found} for name, found in results["windows"].items()
    }
    lines = [
        f"`{results['command']}`, {results['date']}, mosquitto {results['mosquitto']}, "
        f"{results['machine']['cpu']}. {args['messages']:,} QoS 1 messages of "
        f"{len(PAYLOAD)} bytes published one at a time (each after the previous PUBACK), "
        f"{args['subscribers']} persistent subscribers offline (each message queued for each); "
        f"best of {args['repeat']} interleaved runs.",
        "",
        *table(
            [
                "persistence",
                "messages/s",
                "vs first",
                "broker CPU ms/msg",
                "broker wrote KiB/msg",
                "database MB",
            ],
            rows,
        ),
        "",
        "A message acknowledged to the publisher, queued for an offline persistent "
        "subscriber, then the broker killed (kill -9) that long after the PUBACK and "
        "started again:",
        "",
        *table(["persistence", *delays], kept),
        "",
        "The publisher's CONNACK after the restart said session present: "
        + "; ".join(f"{name}: {sorted(p)}" for name, p in present.items())
        + ".",
        "",
        f"Shipped (deploy/mosquitto.conf): `{'`, `'.join(results['shipped'])}`.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=10_000, help="published per setting")
    parser.add_argument("--subscribers", type=int, default=3, help="offline persistent ones")
    parser.add_argument("--repeat", type=int, default=3, help="interleaved runs; the best counts")
    parser.add_argument(
        "--delays-ms",
        type=float,
        nargs="+",
        default=[0.0, 10.0, 100.0, 500.0, 1000.0, 2500.0],
        help="kill -9 this long after the PUBACK",
    )
    args = parse(parser, SMOKE, "broker")
    results = saved(args.out, "broker") if args.render else measure(args)
    publish(args, "broker", results, markdown)


if __name__ == "__main__":
    main()
