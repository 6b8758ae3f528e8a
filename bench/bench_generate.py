"""Throughput of the count generator: grids + QA chats per second, written to JSONL shards, with 1 and 2 processes.

    .venv/bin/python bench/bench_generate.py                  # 20k samples per configuration
    .venv/bin/python bench/bench_generate.py --n 5000 --workers 1 2 4
    .venv/bin/python bench/bench_generate.py --profile 3000   # where one process spends its time (cProfile)

The seed made 1M samples in about an hour (278/s); the goal is >= 5,000/s with 2 processes (1M in under 4 minutes).
Each configuration writes a fresh temporary folder (JSON encoding and file writes included) and includes the
one-off shape library build of each process. The CPU may be shared: the load average is printed with the results.
"""
from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from arc_exp.synthetic import CountQAGenerator, load_records, make_rng, write_shards  # noqa: E402

SEED_RATE = 278.0  # samples/s of the seed's generator (1M in about an hour)
GOAL_RATE = 5000.0


def cpu_seconds() -> float:
    """CPU time of this process and its finished children (the pool's workers, once joined)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def measure(n: int, workers: int, shard_size: int) -> dict:
    """Samples/s (wall clock and per CPU second), grids/s and MB written for ``n`` samples with ``workers``."""
    with tempfile.TemporaryDirectory() as out:
        cpu, started = cpu_seconds(), time.perf_counter()
        write_shards(CountQAGenerator(), n=n, out=out, seed=0, shard_size=shard_size, workers=workers)
        seconds, cpu = time.perf_counter() - started, cpu_seconds() - cpu
        grids = sum(len(record["grids"]) for record in load_records(out))
        megabytes = sum(f.stat().st_size for f in Path(out).glob("shard-*.jsonl")) / 1e6
    return {"rate": n / seconds, "grid_rate": grids / seconds, "cpu_rate": n / cpu, "megabytes": megabytes}


def profile(n: int) -> None:
    generator, rng = CountQAGenerator(), make_rng(0, 0)
    dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), check_circular=False).encode
    profiler = cProfile.Profile()
    profiler.enable()
    for i in range(n):
        dumps(generator.sample(rng, str(i)))
    profiler.disable()
    pstats.Stats(profiler).sort_stats("tottime").print_stats(20)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=20_000, help="samples per configuration")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--shard-size", type=int, default=1000)
    parser.add_argument("--profile", type=int, default=0, metavar="N", help="profile N samples in one process")
    args = parser.parse_args()
    if args.profile:
        profile(args.profile)
        return
    print(f"count generator: {args.n} samples per configuration, shards of {args.shard_size}, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    print(f"{'processes':>9} {'samples/s':>10} {'grids/s':>8} {'x seed':>7} {'samples/CPU-s':>14} {'MB':>6}")
    rates = {}
    for workers in args.workers:
        result = measure(args.n, workers, args.shard_size)
        rates[workers] = result["rate"]
        print(f"{workers:>9} {result['rate']:>10.0f} {result['grid_rate']:>8.0f} {result['rate'] / SEED_RATE:>7.1f} "
              f"{result['cpu_rate']:>14.0f} {result['megabytes']:>6.1f}")
    best = max(rates.values())
    print(f"x seed: samples/s over the seed's {SEED_RATE:.0f}/s. samples/CPU-s: the rate one free core would give "
          f"(wall-clock rates drop when other jobs share the CPUs).")
    print(f"goal >= {GOAL_RATE:.0f} samples/s: {'met' if best >= GOAL_RATE else 'not met'} (best {best:.0f}/s); "
          f"1M samples would take {1e6 / best / 60:.1f} min; load average now {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
