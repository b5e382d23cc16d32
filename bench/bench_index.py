"""Throughput and memory of HammingIndex on one core, against its queries/s floors.

Builds each index from uniformly random codes with one bulk ``add``, then queries with a mix
of stored entries perturbed by ``threshold // 2`` random bit flips (each has a hit) and
uniformly random codes (almost never a hit). The floor is 5,000 queries/s at 1M and 10M PDQ
and 10M 64-bit entries. ``--entries-pdq-huge 30000000`` adds the video-scale index (a year of
video at 1 fps), judged against 2,000 queries/s, at most 3.5 GB (index ``nbytes`` and RSS
after the build) and a build within 60 s. Also times the plain numpy linear scan at the PDQ
size for comparison. Pinned to one CPU; numpy does not use threads for these operations.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable

import numpy as np

from bench import parse
from bench.processes import status_bytes
from bench.report import verdict
from streamguard.blocklist.index import HammingIndex

FLOOR_QPS = 5_000
HUGE_PDQ_FLOOR_QPS = 2_000
HUGE_PDQ_MAX_BYTES = 3_500_000_000
HUGE_PDQ_MAX_BUILD_S = 60.0
# Above 4,200 entries: the update costs add that many.
SMOKE = {
    "entries_pdq": 5000,
    "entries_pdq_large": 5000,
    "entries_pdq_huge": 5000,
    "entries_64": 5000,
    "queries": 100,
    "linear_queries": 10,
    "repeat": 1,
}


def reset_peak_rss() -> None:
    """Make ``VmHWM`` restart from the current RSS (Linux >= 4.0)."""
    with open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")


def random_codes(rng: np.random.Generator, n: int, nbytes: int) -> np.ndarray:
    return rng.integers(0, 256, (n, nbytes), dtype=np.uint8)


def make_queries(rng: np.random.Generator, codes: np.ndarray, count: int, flips: int) -> np.ndarray:
    """Half: entries with ``flips`` distinct random bits flipped; half: random codes."""
    half = count // 2
    bits = np.unpackbits(codes[rng.integers(0, len(codes), half)], axis=1)
    for row in bits:
        row[rng.choice(bits.shape[1], flips, replace=False)] ^= 1
    near = np.packbits(bits, axis=1)
    far = random_codes(rng, count - half, codes.shape[1])
    queries = np.concatenate([near, far])
    return queries[rng.permutation(count)]


def search_qps(
    index: HammingIndex, queries: np.ndarray, threshold: int, repeat: int = 1
) -> tuple[float, float]:
    """Best-of-``repeat`` queries per second over all ``queries``, and mean hits per query."""
    best = 0.0
    for _ in range(repeat):
        hits = 0
        start = time.perf_counter()
        for q in queries:
            hits += len(index.search(q, threshold)[0])
        best = max(best, len(queries) / (time.perf_counter() - start))
    return best, hits / len(queries)


def timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def bench_updates(
    rng: np.random.Generator, index: HammingIndex, queries: np.ndarray, repeat: int
) -> dict:
    """Cost of each update path on a freshly built index of ``n`` entries (ids 0..n-1)."""
    n, nbytes, t = len(index), index.bits // 8, index.max_threshold
    fresh = iter(range(n, 2 * n))
    singles = [
        timed(lambda: index.add(np.array([next(fresh)]), random_codes(rng, 1, nbytes)))
        for _ in range(100)
    ]
    removes = [timed(lambda i=i: index.remove(np.array([i]))) for i in range(100)]
    ids = np.array([next(fresh) for _ in range(3900)])
    index.add(ids, random_codes(rng, len(ids), nbytes))  # delta now holds 4,000 entries
    qps_delta, _ = search_qps(index, queries, t, repeat)
    ids = np.array([next(fresh) for _ in range(200)])
    merge = timed(lambda: index.add(ids, random_codes(rng, len(ids), nbytes)))
    compact = timed(lambda: index.remove(np.arange(100, int(n * 0.3))))
    return {
        "n": n,
        "add1": 1e6 * float(np.median(singles)),
        "remove1": 1e3 * float(np.median(removes)),
        "qps_delta": qps_delta,
        "merge": merge,
        "compact": compact,
    }


def bench_index(
    rng: np.random.Generator, bits: int, n: int, threshold: int, count: int, repeat: int
) -> dict:
    """Build, query and update one index; memory figures are per entry."""
    codes = random_codes(rng, n, bits // 8)
    queries = make_queries(rng, codes, count, threshold // 2)
    ids = np.arange(n, dtype=np.int64)
    reset_peak_rss()
    rss_before = status_bytes("VmRSS")
    index = HammingIndex(bits, threshold)
    start, cpu_start = time.perf_counter(), time.process_time()
    index.add(ids, codes)
    build = time.perf_counter() - start
    build_cpu = time.process_time() - cpu_start
    peak_delta = status_bytes("VmHWM") - rss_before
    rss_delta = status_bytes("VmRSS") - rss_before
    del codes
    nbytes = index.nbytes
    qps, hits = search_qps(index, queries, threshold, repeat)
    updates = bench_updates(rng, index, queries[: count // 2], repeat)
    return {
        "updates": updates,
        "name": f"{bits}-bit index",
        "n": n,
        "t": threshold,
        "build": f"{build:.1f}",
        "build_s": build,
        "build_cpu_s": build_cpu,
        "qps": qps,
        "hits": hits,
        "bytes": f"{nbytes / n:.0f}",
        "rss": f"{rss_delta / n:.0f} / {peak_delta / n:.0f}",
        "memory": {"nbytes": nbytes, "rss_after_build": rss_delta, "peak_build": peak_delta},
        "floor": FLOOR_QPS,
    }


def huge_verdicts(row: dict) -> list[str]:
    """The video-scale floors beyond queries/s: memory after the build and build time."""
    memory = row["memory"]
    largest = max(memory["nbytes"], memory["rss_after_build"])
    return [
        f"{row['n']:,} PDQ: index nbytes {memory['nbytes'] / 1e9:.2f} GB, RSS after build "
        f"{memory['rss_after_build'] / 1e9:.2f} GB (peak during build "
        f"{memory['peak_build'] / 1e9:.2f} GB), at most {HUGE_PDQ_MAX_BYTES / 1e9:.1f} GB "
        f"{verdict(largest <= HUGE_PDQ_MAX_BYTES)}",
        f"{row['n']:,} PDQ: build {row['build_s']:.1f} s wall ({row['build_cpu_s']:.1f} s CPU), "
        f"at most {HUGE_PDQ_MAX_BUILD_S:.0f} s {verdict(row['build_s'] <= HUGE_PDQ_MAX_BUILD_S)}",
    ]


def bench_linear(rng: np.random.Generator, n: int, threshold: int, count: int) -> dict:
    """``np.bitwise_count`` over all 256-bit entries per query (the no-index baseline)."""
    words = random_codes(rng, n, 32).view(np.uint64)
    queries = make_queries(rng, words.view(np.uint8), count, threshold // 2).view(np.uint64)
    hits = 0
    start = time.perf_counter()
    for q in queries:
        d = np.bitwise_count(words ^ q).sum(axis=1, dtype=np.uint16)
        hits += int(np.count_nonzero(d <= threshold))
    qps = count / (time.perf_counter() - start)
    return {
        "name": "256-bit linear scan",
        "n": n,
        "t": threshold,
        "build": "-",
        "qps": qps,
        "hits": hits / count,
        "bytes": "32",
        "rss": "-",
        "floor": FLOOR_QPS,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries-pdq", type=int, default=1_000_000)
    parser.add_argument(
        "--entries-pdq-large", type=int, default=10_000_000, help="0 skips this index"
    )
    parser.add_argument(
        "--entries-pdq-huge",
        type=int,
        default=0,
        help="30000000 for the video-scale floors (about 5 GB of RAM); 0 skips this index",
    )
    parser.add_argument("--entries-64", type=int, default=10_000_000)
    parser.add_argument("--queries", type=int, default=5000)
    parser.add_argument("--linear-queries", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3, help="best of this many query passes")
    parser.add_argument("--seed", type=int, default=0)
    args = parse(parser, SMOKE)
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    rng = np.random.default_rng(args.seed)
    indexes = [bench_index(rng, 256, args.entries_pdq, 31, args.queries, args.repeat)]
    if args.entries_pdq_large:
        indexes.append(bench_index(rng, 256, args.entries_pdq_large, 31, args.queries, args.repeat))
    notes = []
    if args.entries_pdq_huge:
        huge = bench_index(rng, 256, args.entries_pdq_huge, 31, args.queries, args.repeat)
        indexes.append({**huge, "floor": HUGE_PDQ_FLOOR_QPS})
        notes = huge_verdicts(huge)
    indexes.append(bench_index(rng, 64, args.entries_64, 10, args.queries, args.repeat))
    rows = [*indexes, bench_linear(rng, args.entries_pdq, 31, args.linear_queries)]
    print(
        "| structure | entries | threshold | build s | queries/s | hits/query "
        "| index bytes/entry | RSS delta bytes/entry: after build / peak | floor q/s |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for row in rows:
        print(
            f"| {row['name']} | {row['n']:,} | {row['t']} | {row['build']} | {row['qps']:,.0f} "
            f"| {row['hits']:.2f} | {row['bytes']} | {row['rss']} | {row['floor']:,} "
            f"{verdict(row['qps'] >= row['floor'])} |"
        )
    print()
    print(
        "| index | entries | add 1 (into delta) µs | remove 1 ms | queries/s, 4,000 in delta "
        "| merge 4,200 s | remove 30% + compact s |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for row in indexes:
        u = row["updates"]
        print(
            f"| {row['name']} | {u['n']:,} | {u['add1']:.0f} | {u['remove1']:.1f} "
            f"| {u['qps_delta']:,.0f} | {u['merge']:.2f} | {u['compact']:.2f} |"
        )
    if notes:
        print()
        for note in notes:
            print(f"- {note}")


if __name__ == "__main__":
    main()
