"""The Redis blocklist at scale (issue 4): propagation, full loads, worker memory, import.

Everything runs against a real redis-server started here on a free loopback port (AOF on,
``appendfsync everysec``, automatic AOF rewrites off; the data set is flushed between
parts). Hashes are random, from a seeded numpy Generator.

1. Propagation: W worker processes (multiprocessing spawn) each run ``BlocklistSync`` with
   a preloaded blocklist, and a thread in each polls ``blocklist.search`` for the next
   pending hash about every millisecond. The coordinator adds one entry at a time with
   ``BlocklistStore.write`` (then a few with ``streamguard blocklist add``) and waits for
   every worker to match it. Latency = CLOCK_MONOTONIC (``time.monotonic``, system-wide)
   when a worker first matched the hash minus when ``write`` returned (the CLI exited).
2. Load and memory: a fresh process (spawn) loads the whole store with ``load_once``:
   1M PDQ, 10M PDQ, 10M pHash entries. Load seconds, the process's RSS after the load and
   its peak (VmHWM), ``Blocklist.nbytes``; Redis's ``used_memory`` per entry.
3. Import: ``streamguard blocklist import`` of a generated 1M-line six-column CSV, end to
   end and the write alone (the command's own timing on stderr), then the same file again.

Writes bench/out/blocklist.json and bench/out/blocklist.md.
"""

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import queue
import re
import resource
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import numpy as np
import redis

from bench import ROOT, parse
from bench.processes import cpu_s, status_bytes
from bench.report import commit, invocation, machine, percentiles, publish, saved, table, verdict
from streamguard.blocklist.entry import Entry
from streamguard.blocklist.store import BlocklistStore
from streamguard.blocklist.sync import BlocklistSync, load_once
from streamguard.hashing import ALGORITHMS
from streamguard.infra.redis import RedisSettings, connect
from tests.support.redis import Appendfsync, RedisServer, redis_server

STREAMGUARD = str(Path(sys.executable).parent / "streamguard")
LISTS = ("ncmec", "gifct", "stopncii", "internal")
CATEGORIES = ("csam", "terror", "test")
LABELS = ("", "", "", "batch 2024-03", "reviewed")
WRITE_CHUNK = 100_000  # entries per store.write call when filling the store
PROPAGATION_LIST = "propagation"
# What timed_adds measures, named for each way of adding.
STORE_FIGURES = ("from_return_s", "from_call_s", "write_s")
CLI_FIGURES = ("from_exit_s", "from_start_s", "cli_s")
TARGETS = {
    "propagation_p99_s": 1.0,
    "load_pdq_s": 10.0,
    "load_64_s": 60.0,
    "rss_bytes": 1e9,  # 1 GB
    "import_per_s": 100_000,
}
SMOKE = {
    "workers": 1,
    "preload": 1000,
    "adds": 3,
    "cli_adds": 1,
    "gap_ms": 5,
    "import_entries": 1000,
    "load_pdq": [1000],
    "load_phash": [],
}


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def loadavg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


# -- Redis ----------------------------------------------------------------------------------


def client(server: RedisServer) -> redis.Redis:
    """A client that waits out the long commands of a store of millions of entries."""
    return redis.Redis.from_url(server.url, socket_timeout=600)


def used_memory(server: RedisServer) -> int:
    with client(server) as connection:
        return int(connection.info("memory")["used_memory"])


def key_bytes(server: RedisServer, prefix: str) -> dict[str, int]:
    """Exact ``MEMORY USAGE`` of each store key (O(n): a few seconds at 10M entries)."""
    with client(server) as connection:
        names = [name for name in connection.scan_iter(match=f"{prefix}*")]
        sizes = {name.decode(): connection.memory_usage(name, samples=0) or 0 for name in names}
    return {name.rsplit(":", 1)[1]: size for name, size in sorted(sizes.items())}


def reset_stats(server: RedisServer) -> None:
    with client(server) as connection:
        connection.config_resetstat()


def command_usec(server: RedisServer) -> dict[str, int]:
    """Microseconds Redis spent per command since ``reset_stats`` (``INFO commandstats``;
    a script's time includes the commands it calls, which are listed too)."""
    with client(server) as connection:
        stats = connection.info("commandstats")
    return {
        name.removeprefix("cmdstat_"): int(stat["usec"])
        for name, stat in sorted(stats.items(), key=lambda item: -item[1]["usec"])
        if stat["usec"] >= 1000
    }


def flush(server: RedisServer) -> None:
    """Drop everything, and the AOF with it (automatic rewrites are off)."""
    with client(server) as connection:
        connection.flushall()
        if server.appendfsync != "off":
            with suppress(redis.ResponseError):  # a rewrite already running will do
                connection.bgrewriteaof()


@contextmanager
def fresh_redis(directory: Path, aof: Appendfsync) -> Iterator[RedisServer]:
    """A redis-server in an emptied ``directory``, removed on exit (with a 10M-entry
    store, its AOF takes gigabytes)."""
    shutil.rmtree(directory, ignore_errors=True)
    try:
        with redis_server(directory, appendfsync=aof) as server:
            yield server
    finally:
        shutil.rmtree(directory, ignore_errors=True)


# -- entries --------------------------------------------------------------------------------


def random_digests(rng: np.random.Generator, n: int, algo: str) -> list[bytes]:
    nbytes = ALGORITHMS[algo].bits // 8
    raw = rng.integers(0, 256, (n, nbytes), dtype=np.uint8).tobytes()
    return [raw[i : i + nbytes] for i in range(0, len(raw), nbytes)]


def entry_id(number: int) -> str:
    return f"e{number:07d}" if number < 10_000_000 else f"e{number}"


def make_entries(algo: str, digests: list[bytes], first: int) -> list[Entry]:
    """Entries numbered from ``first``: ids ``e0000001``…, a few lists, categories, labels."""
    return [
        Entry(
            algo,
            digest,
            entry_id(n),
            LISTS[n % len(LISTS)],
            CATEGORIES[n % len(CATEGORIES)],
            LABELS[n % len(LABELS)],
        )
        for n, digest in enumerate(digests, first)
    ]


def fill(
    url: str, prefix: str, algo: str, first: int, count: int, rng: np.random.Generator
) -> dict[str, float]:
    """Write ``count`` random entries numbered from ``first`` with ``store.write``."""

    async def main() -> float:
        client = connect(RedisSettings(url=url, timeout_s=600))
        store = BlocklistStore(client, prefix)
        written = 0.0
        try:
            for start in range(first, first + count, WRITE_CHUNK):
                n = min(WRITE_CHUNK, first + count - start)
                entries = make_entries(algo, random_digests(rng, n, algo), start)
                began = time.perf_counter()
                await store.write(entries, source="bench", now=time.time())
                written += time.perf_counter() - began
                done = start + n - first
                if done % 1_000_000 == 0 or done == count:
                    log(f"  {algo}: {start + n - 1:,} entries in Redis ({done / written:,.0f}/s)")
        finally:
            await client.aclose()
        return written

    seconds = asyncio.run(main())
    return {"entries": count, "write_s": round(seconds, 2), "per_s": round(count / seconds)}


# -- 1. propagation -------------------------------------------------------------------------


def propagation_worker(
    worker: int,
    url: str,
    prefix: str,
    pending: list[tuple[bytes, str]],
    poll_s: float,
    ready: Any,
    seen: Any,
    done: Any,
) -> None:
    """One worker process: sync from Redis, and poll ``search`` for each pending hash in turn."""

    def poll(sync: BlocklistSync) -> None:
        polls, began = 0, time.monotonic()
        for i, (digest, wanted) in enumerate(pending):
            while not done.is_set():
                polls += 1
                if any(hit.entry.id == wanted for hit in sync.blocklist.search("pdq", digest)):
                    seen.put((worker, i, time.monotonic()))
                    break
                time.sleep(poll_s)
        period = (time.monotonic() - began) / max(polls, 1)
        done.wait()  # the coordinator may still be collecting the last hash
        seen.put((worker, -1, period))

    async def main() -> None:
        sync = BlocklistSync(RedisSettings(url=url, prefix=prefix))
        task = asyncio.create_task(sync.run())
        began = time.perf_counter()
        await sync.loaded.wait()
        load_s = time.perf_counter() - began
        threading.Thread(target=poll, args=(sync,), daemon=True).start()
        ready.put((worker, load_s, len(sync.blocklist), status_bytes("VmRSS")))
        await asyncio.to_thread(done.wait)
        sync.stop()
        await task

    asyncio.run(main())


def collect(seen: Any, index: int, workers: int, timeout_s: float) -> list[float]:
    """The time each worker matched pending hash ``index``."""
    times: dict[int, float] = {}
    deadline = time.monotonic() + timeout_s
    while len(times) < workers:
        try:
            worker, i, at = seen.get(timeout=max(deadline - time.monotonic(), 0.001))
        except queue.Empty:
            raise TimeoutError(
                f"hash {index}: {workers - len(times)} worker(s) did not match it "
                f"within {timeout_s:.0f} s"
            ) from None
        if i != index:
            raise RuntimeError(f"worker {worker} reported hash {i} while {index} was pending")
        times[worker] = at
    return list(times.values())


def bench_propagation(args: argparse.Namespace, server: RedisServer) -> dict[str, Any]:
    rng = np.random.default_rng(args.seed)
    prefix = "bench-propagation:"
    log(f"propagation: preloading {args.preload:,} PDQ entries")
    preload = fill(server.url, prefix, "pdq", 1, args.preload, rng)
    total = args.adds + args.cli_adds
    digests = random_digests(rng, total, "pdq")
    pending = [(digest, f"p{i:06d}") for i, digest in enumerate(digests)]
    context = mp.get_context("spawn")
    ready, seen, done = context.Queue(), context.Queue(), context.Event()
    processes = [
        context.Process(
            target=propagation_worker,
            args=(w, server.url, prefix, pending, args.poll_ms / 1000, ready, seen, done),
            daemon=True,
        )
        for w in range(args.workers)
    ]
    load_before = loadavg()
    for process in processes:
        process.start()
    try:
        workers = [ready.get(timeout=300) for _ in processes]
        log(f"propagation: {args.workers} workers loaded; {args.adds} adds with store.write")
        with store_writes(server.url, prefix) as write:
            by_store = pending[: args.adds]
            store_result = timed_adds(args, by_store, 0, seen, rng, write, STORE_FIGURES)
        log(f"propagation: {args.cli_adds} adds with `streamguard blocklist add`")
        add = cli_adds(server.url, prefix)
        by_cli = pending[args.adds :]
        cli_result = timed_adds(args, by_cli, args.adds, seen, rng, add, CLI_FIGURES)
        done.set()
        periods = [seen.get(timeout=10)[2] for _ in processes]
    finally:
        done.set()
        for process in processes:
            process.join(10)
            if process.is_alive():
                process.kill()
                process.join()
    return {
        "workers": args.workers,
        "preload": preload,
        "worker_load_s": [round(w[1], 2) for w in sorted(workers)],
        "worker_rss_mb": [round(w[3] / 2**20) for w in sorted(workers)],
        "poll_period_ms": [round(1000 * p, 3) for p in periods],
        "store": store_result,
        "cli": cli_result,
        "loadavg_before": load_before,
        "loadavg_after": loadavg(),
    }


@contextmanager
def store_writes(url: str, prefix: str) -> Iterator[Callable[[bytes, str], None]]:
    """Add one propagation entry with ``BlocklistStore.write``, as a plain call."""
    with asyncio.Runner() as runner:
        client = connect(RedisSettings(url=url))
        store = BlocklistStore(client, prefix)
        runner.run(store.position())  # connect before the first timed write

        def write(digest: bytes, wanted: str) -> None:
            entry = Entry("pdq", digest, wanted, PROPAGATION_LIST, "test", "")
            runner.run(store.write([entry], source="bench", now=time.time()))

        yield write
        runner.run(client.aclose())


def cli_adds(url: str, prefix: str) -> Callable[[bytes, str], None]:
    """Add one propagation entry with ``streamguard blocklist add``."""

    def add(digest: bytes, wanted: str) -> None:
        command = [STREAMGUARD, "blocklist", "add", "--algo", "pdq", "--hash", digest.hex()]
        command += ["--id", wanted, "--list", PROPAGATION_LIST, "--category", "test"]
        command += ["--redis", url, "--redis-prefix", prefix]
        subprocess.run(command, check=True, stdin=subprocess.DEVNULL, capture_output=True)

    return add


def timed_adds(
    args: argparse.Namespace,
    pending: list[tuple[bytes, str]],
    first: int,
    seen: Any,
    rng: np.random.Generator,
    add: Callable[[bytes, str], None],
    names: tuple[str, str, str],
) -> dict[str, Any]:
    """``add`` each pending hash (numbered from ``first``) after a random pause, so adds
    are not in step with the workers' polling, and wait for every worker to match it. The
    figures, under ``names``: each worker's match after ``add`` returned, after it was
    called, and ``add``'s own time."""
    after_return, after_call, add_s = [], [], []
    for i, (digest, wanted) in enumerate(pending, first):
        time.sleep(rng.uniform(0.5, 1.5) * args.gap_ms / 1000)
        called = time.monotonic()
        add(digest, wanted)
        returned = time.monotonic()
        matched = collect(seen, i, args.workers, args.timeout_s)
        after_return += [at - returned for at in matched]
        after_call += [at - called for at in matched]
        add_s.append(returned - called)
    figures = (after_return, after_call, add_s)
    return {
        "adds": len(pending),
        **{name: percentiles(f, digits=6) for name, f in zip(names, figures, strict=True)},
    }


# -- 2. load and memory ---------------------------------------------------------------------


def load_child(url: str, prefix: str, probe: tuple[str, bytes, str], results: Any) -> None:
    """A fresh worker process: load the whole store as ``scan --redis`` or a worker would."""
    rss_before = status_bytes("VmRSS")
    cpu_before = resource.getrusage(resource.RUSAGE_SELF)
    began = time.perf_counter()
    blocklist = asyncio.run(load_once(RedisSettings(url=url, prefix=prefix, timeout_s=600), {}))
    load_s = time.perf_counter() - began
    cpu_after = resource.getrusage(resource.RUSAGE_SELF)
    algo, digest, wanted = probe
    found = any(hit.entry.id == wanted for hit in blocklist.search(algo, digest))
    results.put(
        {
            "load_s": load_s,
            "cpu_s": (cpu_after.ru_utime - cpu_before.ru_utime)
            + (cpu_after.ru_stime - cpu_before.ru_stime),
            "entries": len(blocklist),
            "counts": {name: n for name, n in blocklist.counts().items() if n},
            "nbytes": blocklist.nbytes,
            "table_nbytes": blocklist._table.nbytes,
            "rss_before": rss_before,
            "rss_after": status_bytes("VmRSS"),
            "hwm": status_bytes("VmHWM"),
            "probe_found": found,
        }
    )


def measure_load(server: RedisServer, prefix: str, probe: tuple[str, bytes, str]) -> dict[str, Any]:
    context = mp.get_context("spawn")
    results = context.Queue()
    child = context.Process(target=load_child, args=(server.url, prefix, probe, results))
    redis_cpu = cpu_s(server.process.pid)
    reset_stats(server)
    load_before = loadavg()
    child.start()
    try:
        result = results.get(timeout=1800)
    finally:
        child.join(60)
        if child.is_alive():
            child.kill()
            child.join()
    result["redis_cpu_s"] = round(cpu_s(server.process.pid) - redis_cpu, 2)
    result["redis_usec"] = command_usec(server)
    result["loadavg_before"] = load_before
    result["loadavg_after"] = loadavg()
    if not result["probe_found"]:
        raise RuntimeError("the loaded blocklist does not match a stored hash")
    return result


def redis_memory(server: RedisServer, prefix: str, entries: int, baseline: int) -> dict[str, Any]:
    used = used_memory(server)
    keys = key_bytes(server, prefix)
    return {
        "used_memory": used,
        "per_entry": round((used - baseline) / entries),
        "keys_per_entry": {name: round(size / entries) for name, size in keys.items()},
    }


def bench_load(args: argparse.Namespace, server: RedisServer) -> list[dict[str, Any]]:
    rng = np.random.default_rng(args.seed + 1)
    steps = [("pdq", n) for n in args.load_pdq] + [("phash", n) for n in args.load_phash]
    results = []
    for algo in ("pdq", "phash"):
        sizes = sorted(n for a, n in steps if a == algo)
        if not sizes:
            continue
        flush(server)
        prefix = f"bench-load-{algo}:"
        baseline = used_memory(server)
        have = 0
        probe = None
        for size in sizes:
            log(f"load: filling Redis to {size:,} {algo} entries")
            write = fill(server.url, prefix, algo, have + 1, size - have, rng)
            if probe is None:  # the first entry written: the loaded blocklist must match it
                probe = (algo, _first_digest(server, prefix), entry_id(1))
            have = size
            memory = redis_memory(server, prefix, size, baseline)
            log(f"load: {size:,} {algo} entries, fresh process")
            load = measure_load(server, prefix, probe)
            log(
                f"load: {size:,} {algo} in {load['load_s']:.1f} s, "
                f"RSS {load['rss_after'] / 2**20:.0f} MB, peak {load['hwm'] / 2**20:.0f} MB"
            )
            results.append({"algo": algo, "size": size, "write": write, "redis": memory, **load})
    flush(server)
    return results


def _first_digest(server: RedisServer, prefix: str) -> bytes:
    with client(server) as connection:
        content = connection.hget(f"{prefix}{{blocklist}}:entries", "1")
    return bytes.fromhex(json.loads(content)[1])


# -- 3. import ------------------------------------------------------------------------------


def write_csv(path: Path, n: int, seed: int) -> None:
    """``n`` random PDQ entries as a six-column CSV (algo,hash,id,list,category,label)."""
    rng = np.random.default_rng(seed)
    with path.open("w", encoding="utf-8") as output:
        output.write("algo,hash,id,list,category,label\n")
        for start in range(1, n + 1, WRITE_CHUNK):
            entries = make_entries(
                "pdq", random_digests(rng, min(WRITE_CHUNK, n + 1 - start), "pdq"), start
            )
            output.writelines(
                f"pdq,{e.digest.hex()},{e.id},{e.list},{e.category},{e.label}\n" for e in entries
            )


def run_import(server: RedisServer, path: Path, prefix: str) -> dict[str, Any]:
    """``streamguard blocklist import``: wall time start to exit, its own timings, peak RSS."""
    command = [STREAMGUARD, "blocklist", "import", str(path)]
    command += ["--redis", server.url, "--redis-prefix", prefix]
    redis_cpu = cpu_s(server.process.pid)
    reset_stats(server)
    began = time.monotonic()
    process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)  # the child's own rusage (peak RSS, CPU)
    wall = time.monotonic() - began
    process.returncode = os.waitstatus_to_exitcode(status)
    stderr = process.stderr.read().decode() if process.stderr else ""
    if process.returncode != 0:
        raise RuntimeError(f"import failed ({process.returncode}): {stderr}")
    written = re.search(
        r"(\d+) added, (\d+) updated, (\d+) unchanged \(written in ([\d.]+) s", stderr
    )
    parsing = re.search(r"parsing ([\d.]+) s", stderr)
    if not written or not parsing:
        raise RuntimeError(f"cannot read the import's timings from: {stderr}")
    return {
        "wall_s": round(wall, 2),
        "write_s": float(written.group(4)),
        "parse_s": float(parsing.group(1)),
        "added": int(written.group(1)),
        "updated": int(written.group(2)),
        "unchanged": int(written.group(3)),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
        "max_rss_mb": round(usage.ru_maxrss / 1024),
        "redis_cpu_s": round(cpu_s(server.process.pid) - redis_cpu, 2),
        "redis_usec": command_usec(server),
        "stderr": stderr.strip().splitlines(),
        "loadavg_after": loadavg(),
    }


def bench_import(args: argparse.Namespace, server: RedisServer) -> dict[str, Any]:
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"blocklist_import_{args.import_entries}_seed{args.seed}.csv"
    if not path.exists():
        log(f"import: writing {path}")
        partial = path.with_suffix(".partial")
        write_csv(partial, args.import_entries, args.seed)
        partial.rename(path)
    flush(server)
    prefix = "bench-import:"
    baseline = used_memory(server)
    log(f"import: {args.import_entries:,} entries")
    first = run_import(server, path, prefix)
    log(f"import: {first['wall_s']} s end to end, write {first['write_s']} s; again")
    again = run_import(server, path, prefix)
    memory = redis_memory(server, prefix, args.import_entries, baseline)
    flush(server)
    return {
        "entries": args.import_entries,
        "file_mb": round(path.stat().st_size / 2**20),
        "first": first,
        "again": again,
        "redis": memory,
    }


# -- report ---------------------------------------------------------------------------------


def git_state() -> dict[str, Any]:
    """The commit, and the uncommitted changes to the code measured."""
    status = ["git", "status", "--short", "streamguard/blocklist"]
    dirty = subprocess.run(status, cwd=ROOT, capture_output=True, text=True).stdout
    return {"commit": commit(), "dirty": dirty.strip().splitlines()}


def ms(value: float) -> str:
    return f"{1000 * value:.1f}"


def mb(value: float) -> str:
    return f"{value / 1e6:,.0f}"


def target_rows(results: dict[str, Any]) -> list[list[Any]]:
    rows = []
    if "propagation" in results:
        p = results["propagation"]
        w = p["workers"]
        store, cli = p["store"]["from_return_s"], p["cli"]["from_exit_s"]
        rows.append(
            [
                f"propagation, `store.write` returned → matched, p99 "
                f"({store['count']} pairs, {w} workers)",
                f"{ms(store['p99'])} ms",
                "≤ 1 s",
                verdict(store["p99"] <= TARGETS["propagation_p99_s"]),
            ]
        )
        rows.append(
            [
                f"propagation, `blocklist add` exited → matched, p99 ({cli['count']} pairs)",
                f"{ms(cli['p99'])} ms",
                "≤ 1 s",
                verdict(cli["p99"] <= TARGETS["propagation_p99_s"]),
            ]
        )
    loads = results.get("load", [])
    for load in loads:
        algo, size = load["algo"], load["size"]
        if algo == "pdq" and size > 1_000_000:
            continue  # the load target is for 1M PDQ; larger PDQ sets are there for memory
        target = TARGETS["load_pdq_s" if algo == "pdq" else "load_64_s"]
        rows.append(
            [
                f"load {size:,} {algo} into a fresh process",
                f"{load['load_s']:.1f} s",
                f"≤ {target:.0f} s",
                verdict(load["load_s"] <= target),
            ]
        )
    pdq = [load for load in loads if load["algo"] == "pdq"]
    if pdq:
        load = max(pdq, key=lambda load: load["size"])
        rows.append(
            [
                f"worker RSS with {load['size']:,} PDQ loaded (after load / peak)",
                f"{mb(load['rss_after'])} / {mb(load['hwm'])} MB",
                "≤ 1,000 MB",
                f"{verdict(load['rss_after'] <= TARGETS['rss_bytes'])} / "
                f"{verdict(load['hwm'] <= TARGETS['rss_bytes'])}",
            ]
        )
    if "import" in results:
        i = results["import"]
        n, first = i["entries"], i["first"]
        for what, seconds in (("end to end", first["wall_s"]), ("write part", first["write_s"])):
            rows.append(
                [
                    f"`blocklist import` of {n:,} CSV lines, {what}",
                    f"{n / seconds:,.0f} entries/s",
                    "≥ 100,000/s",
                    verdict(n / seconds >= TARGETS["import_per_s"]),
                ]
            )
    return rows


def markdown(results: dict[str, Any]) -> str:
    m, g = results["machine"], results["git"]
    dirty = ", ".join(line.strip() for line in g["dirty"] if "blocklist" in line) or "none"
    lines = [
        "## Redis blocklist (issue 4)",
        "",
        f"`{results['command']}` ({results['runtime_s']['total'] / 60:.1f} min). Commit "
        f"{g['commit']}; uncommitted changes in streamguard/blocklist/: {dirty}.",
        "",
        f"**Machine:** {m['cpu']}, {m['memory_gib']} GiB, Python {m['python']}, redis-server "
        f"{m['redis']} (AOF {results['aof']}), redis-py {m['redis_py']}, numpy {m['numpy']}. "
        "Redis, the workers and the benchmark share the 2 cores.",
        "",
        *table(["measure", "figure", "target", "result"], target_rows(results)),
    ]
    if "propagation" in results:
        p = results["propagation"]
        rows = []
        for name, part, key in (
            ("`store.write` returned → worker matched", p["store"], "from_return_s"),
            ("`store.write` called → worker matched", p["store"], "from_call_s"),
            ("`store.write` round trip", p["store"], "write_s"),
            ("`blocklist add` exited → worker matched", p["cli"], "from_exit_s"),
            ("`blocklist add` started → worker matched", p["cli"], "from_start_s"),
            ("`blocklist add` process, start to exit", p["cli"], "cli_s"),
        ):
            s = part[key]
            rows.append(
                [name, s["count"], *(ms(s[q]) for q in ("min", "p50", "p95", "p99", "max"))]
            )
        lines += [
            "",
            f"### Propagation: {p['workers']} workers, {p['preload']['entries']:,} PDQ entries "
            f"preloaded, {p['store']['adds']} adds with `store.write` and {p['cli']['adds']} "
            "with the CLI",
            "",
            *table(["interval (ms)", "n", "min", "p50", "p95", "p99", "max"], rows),
            "",
            f"Workers' poll period (search + sleep): {', '.join(map(str, p['poll_period_ms']))} "
            f"ms; worker RSS {', '.join(map(str, p['worker_rss_mb']))} MB. Load average "
            f"before / after: {p['loadavg_before']} / {p['loadavg_after']}.",
        ]
    if results.get("load"):
        rows = []
        for load in results["load"]:
            n = load["size"]
            rows.append(
                [
                    f"{n:,} {load['algo']}",
                    f"{load['write']['per_s']:,}",
                    f"{load['load_s']:.1f}",
                    f"{load['cpu_s']:.1f}",
                    f"{load['redis_cpu_s']:.1f}",
                    usec_per_entry(load, "hscan", n),
                    f"{n / load['load_s']:,.0f}",
                    f"{mb(load['rss_before'])}",
                    f"{mb(load['rss_after'])} ({(load['rss_after'] - load['rss_before']) / n:.0f})",
                    f"{mb(load['hwm'])} ({(load['hwm'] - load['rss_before']) / n:.0f})",
                    f"{mb(load['nbytes'])} ({load['nbytes'] / n:.0f})",
                    f"{load['table_nbytes'] / n:.0f}",
                    load["loadavg_before"].split()[0],
                ]
            )
        lines += [
            "",
            "### Full load into a fresh process (`load_once`)",
            "",
            *table(
                [
                    "entries",
                    "filled with `store.write` (entries/s)",
                    "load s",
                    "load CPU s",
                    "Redis CPU s",
                    "HSCAN µs/entry",
                    "entries/s",
                    "RSS before MB",
                    "RSS after MB (B/entry over before)",
                    "peak RSS MB (B/entry)",
                    "`nbytes` MB (B/entry)",
                    "of which metadata B/entry",
                    "load 1 min",
                ],
                rows,
            ),
        ]
    redis_rows = []
    for load in results.get("load", []):
        redis_rows.append([f"{load['size']:,} {load['algo']}", load["redis"]])
    if "import" in results:
        redis_rows.append(
            [f"{results['import']['entries']:,} pdq (CLI import)", results["import"]["redis"]]
        )
    if redis_rows:
        names = sorted({name for _, r in redis_rows for name in r["keys_per_entry"]})
        lines += [
            "",
            "### Redis memory per entry",
            "",
            "`used_memory` over the empty server's, and `MEMORY USAGE` of each key.",
            "",
            *table(
                ["store", "used_memory MB", "B/entry", *(f"`{n}` B/entry" for n in names)],
                [
                    [
                        what,
                        mb(r["used_memory"]),
                        r["per_entry"],
                        *(r["keys_per_entry"].get(n, 0) for n in names),
                    ]
                    for what, r in redis_rows
                ],
            ),
        ]
    if "import" in results:
        i = results["import"]
        rows = []
        for name, run in (("first import", i["first"]), ("same file again", i["again"])):
            rows.append(
                [
                    name,
                    f"{run['added']:,} / {run['updated']:,} / {run['unchanged']:,}",
                    f"{run['wall_s']:.1f}",
                    f"{run['parse_s']:.1f}",
                    f"{run['write_s']:.1f}",
                    f"{i['entries'] / run['wall_s']:,.0f}",
                    f"{i['entries'] / run['write_s']:,.0f}",
                    f"{run['cpu_s']:.1f}",
                    f"{run['redis_cpu_s']:.1f}",
                    usec_per_entry(run, "evalsha", i["entries"]),
                    usec_per_entry(run, "hset", i["entries"]),
                    usec_per_entry(run, "hmget", i["entries"]),
                    run["max_rss_mb"],
                ]
            )
        lines += [
            "",
            f"### `streamguard blocklist import` of {i['entries']:,} CSV lines ({i['file_mb']} MB)",
            "",
            *table(
                [
                    "run",
                    "added / updated / unchanged",
                    "start to exit s",
                    "parse s",
                    "write s",
                    "entries/s end to end",
                    "entries/s write",
                    "CLI CPU s",
                    "Redis CPU s",
                    "script µs/entry",
                    "of which HSET",
                    "HMGET",
                    "CLI peak RSS MB",
                ],
                rows,
            ),
        ]
    return "\n".join(lines) + "\n"


def usec_per_entry(run: dict[str, Any], command: str, n: int) -> str:
    usec = run.get("redis_usec", {}).get(command)
    return "-" if usec is None else f"{usec / n:.2f}"


def sizes(text: str) -> list[int]:
    return [int(float(n)) for n in text.split(",") if n]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parts", default="propagation,import,load")
    parser.add_argument("--workers", type=int, default=4, help="propagation: worker processes")
    parser.add_argument("--preload", type=int, default=100_000, help="propagation: PDQ entries")
    parser.add_argument("--adds", type=int, default=200, help="propagation: with store.write")
    parser.add_argument("--cli-adds", type=int, default=20, help="propagation: with the CLI")
    parser.add_argument("--poll-ms", type=float, default=1.0, help="workers' sleep between polls")
    parser.add_argument("--gap-ms", type=float, default=30, help="mean pause between adds")
    parser.add_argument("--timeout-s", type=float, default=30, help="per add, for all workers")
    parser.add_argument("--import-entries", type=int, default=1_000_000)
    parser.add_argument(
        "--load-pdq", type=sizes, default=[1_000_000, 10_000_000], help="comma-separated"
    )
    parser.add_argument("--load-phash", type=sizes, default=[10_000_000], help="comma-separated")
    parser.add_argument(
        "--quick", action="store_true", help="small sizes: 100k/1M loads, 100k import, 50 adds"
    )
    parser.add_argument(
        "--aof", choices=["everysec", "always", "off"], default="everysec", help="Redis appendfsync"
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parse(parser, SMOKE, "blocklist")
    if args.render:
        publish(args, "blocklist", saved(args.out, "blocklist"), markdown)
        return
    if args.quick:
        args.load_pdq, args.load_phash = [100_000, 1_000_000], [1_000_000]
        args.import_entries, args.adds, args.cli_adds = 100_000, 50, 5
    parts = set(args.parts.split(","))
    results: dict[str, Any] = {
        "command": invocation(),
        "machine": machine("redis", "redis_py", "numpy"),
        "git": git_state(),
        "aof": "off" if args.aof == "off" else f"appendfsync {args.aof}",
        "loadavg_start": loadavg(),
        "runtime_s": {},
    }
    started_at = time.monotonic()
    with fresh_redis((args.out / "blocklist-redis").resolve(), args.aof) as server:
        for part, bench in (
            ("propagation", bench_propagation),
            ("import", bench_import),
            ("load", bench_load),
        ):
            if part in parts:
                began = time.monotonic()
                results[part] = bench(args, server)
                results["runtime_s"][part] = round(time.monotonic() - began, 1)
    results["runtime_s"]["total"] = round(time.monotonic() - started_at, 1)
    results["loadavg_end"] = loadavg()
    publish(args, "blocklist", results, markdown)


if __name__ == "__main__":
    main()
