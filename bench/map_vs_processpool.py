"""batch.map / batch.submit on the local service vs concurrent.futures.ProcessPoolExecutor.

Starts the service of a fresh temporary state dir (``batch.use``) and measures, end to
end (submit -> every result in a list, in input order):

1. 10,000 x ``x*x``: batchbook with its default chunking, warm (after one warm-up map),
   median of 5 runs; peer ``ProcessPoolExecutor(os.cpu_count())`` with ``chunksize=100``.
   Target: batchbook <= 5 x the peer.
2. One call, submit -> result: ``batch.submit(f, 3).result()``, median over 30 warm calls,
   vs ``pool.submit(f, 3).result()``. Target: <= 25 ms (absolute).
3. 200 results of 1 MiB each: batchbook default chunking vs the peer with ``chunksize=1``.
   Target: batchbook <= 2 x the peer.
4. 32 x ``time.sleep(0.5)`` on a 2-vCPU compute environment (a queue with maxvCpus=2,
   vcpus=1 per input), vs the ideal 32 x 0.5 s / 2 = 8 s. Target: <= 1.1 x ideal. The peer
   ``ProcessPoolExecutor(2)`` (chunksize=1) is run too, for reference.

The peer, in the same run, is used as a user keeping a pool would: each pool is created
once and warmed up (every worker started and has run the function) before anything is
timed, and only ``pool.map``/``pool.submit`` up to the last result is timed. The peer runs
first and its pools are shut down before batchbook is measured, so the two never share
the CPUs.

    python bench/map_vs_processpool.py [--quick]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import batchbook as batch
from batchbook.server.discovery import stop_service

SLEEP_S = 0.5
SLEEP_VCPUS = 2
SLEEP_QUEUE = "bench2"
SQUARES_TARGET = 5.0  # x ProcessPool
SUBMIT_TARGET_MS = 25.0  # absolute
MIB_TARGET = 2.0  # x ProcessPool
SLEEP_TARGET = 1.1  # x ideal


# ---------------------------------------------------------------- mapped functions
# At module level: batchbook pickles them by value (cloudpickle), the pool by reference.
def square(x: int) -> int:
    return x * x


def mib(i: int) -> bytes:
    return bytes(1 << 20)


def nap(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


# ---------------------------------------------------------------- helpers
def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def median_time(fn: Callable[[], Any], runs: int, check: Callable[[Any], None]) -> list[float]:
    times = []
    for _ in range(runs):
        elapsed, out = timed(fn)
        check(out)
        times.append(elapsed)
    return times


def check_squares(n: int) -> Callable[[Any], None]:
    expected = [x * x for x in range(n)]

    def check(out: Any) -> None:
        if out != expected:
            raise SystemExit("squares: wrong results")

    return check


def check_mib(n: int) -> Callable[[Any], None]:
    def check(out: Any) -> None:
        if len(out) != n or any(len(b) != 1 << 20 for b in out):
            raise SystemExit("mib: wrong results")

    return check


def check_naps(n: int) -> Callable[[Any], None]:
    def check(out: Any) -> None:
        if out != [SLEEP_S] * n:
            raise SystemExit("sleep: wrong results")

    return check


def warm_pool(pool: ProcessPoolExecutor, workers: int) -> None:
    """Start every worker (each busy at once, so none is reused) and run each function once."""
    list(pool.map(nap, [0.05] * workers))
    list(pool.map(square, range(workers * 100), chunksize=100))
    list(pool.map(mib, range(workers), chunksize=1))


def fmt(values: list[float]) -> str:
    return "/".join(f"{v:.3f}" for v in sorted(values))


def ratio_line(what: str, bb: float, peer: float, target: str, met: bool, unit: str = "s") -> str:
    scale = 1000 if unit == "ms" else 1
    return (
        f"ratio: {what} batchbook/peer = {bb / peer:.1f} x (batchbook {bb * scale:.3f} {unit}, "
        f"peer {peer * scale:.3f} {unit}); target <= {target}: {'met' if met else 'NOT met'}"
    )


# ---------------------------------------------------------------- the peer
def run_peer(args: argparse.Namespace) -> dict[str, Any]:
    cpus = os.cpu_count() or 1
    out: dict[str, Any] = {}
    with ProcessPoolExecutor(max_workers=cpus) as pool:
        warm_pool(pool, cpus)
        out["squares"] = median_time(
            lambda: list(pool.map(square, range(args.n), chunksize=100)),
            args.runs,
            check_squares(args.n),
        )
        calls = []
        for _ in range(args.warmup_calls):
            pool.submit(square, 3).result()
        for _ in range(args.calls):
            elapsed, value = timed(lambda: pool.submit(square, 3).result())
            assert value == 9
            calls.append(elapsed)
        out["submit"] = calls
        out["mib"] = median_time(
            lambda: list(pool.map(mib, range(args.mib), chunksize=1)),
            args.mib_runs,
            check_mib(args.mib),
        )
    with ProcessPoolExecutor(max_workers=SLEEP_VCPUS) as pool:
        warm_pool(pool, SLEEP_VCPUS)
        elapsed, value = timed(lambda: list(pool.map(nap, [SLEEP_S] * args.sleeps)))
        check_naps(args.sleeps)(value)
        out["sleep"] = elapsed
    return out


# ---------------------------------------------------------------- batchbook
def make_queue(client: Any, name: str, max_vcpus: int) -> None:
    """A compute environment ``<name>-ce`` and a queue ``<name>``, as tests/server/conftest.py."""
    client.create_compute_environment(
        computeEnvironmentName=f"{name}-ce",
        type="MANAGED",
        computeResources={
            "type": "EC2",
            "minvCpus": 0,
            "desiredvCpus": 0,
            "maxvCpus": max_vcpus,
            "instanceTypes": ["optimal"],
            "subnets": ["subnet-1"],
            "securityGroupIds": ["sg-1"],
            "instanceRole": "ecsInstanceRole",
        },
    )
    client.create_job_queue(
        jobQueueName=name,
        priority=1,
        computeEnvironmentOrder=[{"order": 1, "computeEnvironment": f"{name}-ce"}],
    )


def run_batchbook(args: argparse.Namespace, state_dir: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    started, backend = timed(lambda: batch.use(state_dir))
    out["start"] = started
    try:
        # 1. squares: one warm-up map (it also runs the pre-flight environment probe)
        out["first_map"], _ = timed(lambda: batch.map(square, range(args.n)).results())
        job = batch.map(square, range(args.n))
        job.results()
        out["chunks"] = len(job.chunks)
        out["squares"] = median_time(
            lambda: batch.map(square, range(args.n)).results(), args.runs, check_squares(args.n)
        )
        # 2. one call
        for _ in range(args.warmup_calls):
            batch.submit(square, 3).result()
        calls = []
        for _ in range(args.calls):
            elapsed, value = timed(lambda: batch.submit(square, 3).result())
            assert value == 9
            calls.append(elapsed)
        out["submit"] = calls
        # 3. 1 MiB results (warm-up: one small map of the same function)
        batch.map(mib, range(2)).results()
        out["mib_chunks"] = len(batch.map(mib, range(args.mib)).chunks)
        out["mib"] = median_time(
            lambda: batch.map(mib, range(args.mib)).results(), args.mib_runs, check_mib(args.mib)
        )
        # 4. sleeps on a 2-vCPU compute environment (warm-up: a map of zero-second naps)
        make_queue(backend.batch, SLEEP_QUEUE, SLEEP_VCPUS)
        batch.map(nap, [0.0] * SLEEP_VCPUS, queue=SLEEP_QUEUE).results()
        job = batch.map(nap, [SLEEP_S] * args.sleeps, vcpus=1, queue=SLEEP_QUEUE)
        t0 = time.perf_counter()
        value = job.results()
        out["sleep"] = time.perf_counter() - t0 + job_submit_time(job)
        check_naps(args.sleeps)(value)
        out["sleep_chunks"] = len(job.chunks)
    finally:
        stop_service(state_dir)
    return out


def job_submit_time(job: Any) -> float:
    return float(job.manifest.get("_bench_submit_s", 0.0))


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short run (fewer repetitions)")
    args = parser.parse_args()
    args.n, args.mib, args.sleeps = 10_000, 200, 32
    args.runs, args.mib_runs, args.calls, args.warmup_calls = 5, 3, 30, 5
    if args.quick:
        args.runs, args.mib_runs, args.calls, args.warmup_calls = 2, 1, 10, 2
        args.sleeps = 8
    cpus = os.cpu_count() or 1
    ideal = args.sleeps * SLEEP_S / SLEEP_VCPUS

    peer = run_peer(args)
    tmp = Path(tempfile.mkdtemp(prefix="bench-map-"))
    try:
        bb = run_batchbook(args, tmp / "state")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    print(
        f"machine: {cpus} CPUs, Python {sys.version.split()[0]}; batchbook service started in "
        f"{bb['start']:.2f} s on a fresh temporary state dir (default queue maxvCpus={cpus})"
    )
    print(
        "peer: concurrent.futures.ProcessPoolExecutor, created once and warmed up (every worker "
        "started and has run each function) before timing, as a user keeping a pool would; "
        "only pool.map/pool.submit up to the last result is timed"
    )
    sq_bb, sq_peer = statistics.median(bb["squares"]), statistics.median(peer["squares"])
    print(
        f"1. {args.n:,} x x*x end to end: batchbook default chunking ({bb['chunks']} chunks), "
        f"first map {bb['first_map']:.3f} s (incl. pre-flight probe), then {args.runs} warm runs "
        f"{fmt(bb['squares'])} s; ProcessPool({cpus}) chunksize=100: {fmt(peer['squares'])} s"
    )
    sub_bb, sub_peer = statistics.median(bb["submit"]), statistics.median(peer["submit"])
    print(
        f"2. submit(f, 3).result(), {args.calls} warm calls: batchbook median "
        f"{sub_bb * 1000:.1f} ms (min {min(bb['submit']) * 1000:.1f}, max "
        f"{max(bb['submit']) * 1000:.1f}); ProcessPool median {sub_peer * 1000:.3f} ms"
    )
    mib_bb, mib_peer = statistics.median(bb["mib"]), statistics.median(peer["mib"])
    print(
        f"3. {args.mib} x 1 MiB results end to end: batchbook default chunking "
        f"({bb['mib_chunks']} chunks) {fmt(bb['mib'])} s; ProcessPool({cpus}) chunksize=1 "
        f"{fmt(peer['mib'])} s"
    )
    print(
        f"4. {args.sleeps} x sleep({SLEEP_S}) on a queue with maxvCpus={SLEEP_VCPUS}, vcpus=1: "
        f"batchbook ({bb['sleep_chunks']} chunks) {bb['sleep']:.3f} s; "
        f"ProcessPool({SLEEP_VCPUS}) chunksize=1 {peer['sleep']:.3f} s; ideal {ideal:g} s"
    )
    print(
        ratio_line(
            f"{args.n:,} x x*x",
            sq_bb,
            sq_peer,
            f"{SQUARES_TARGET:g} x",
            sq_bb <= SQUARES_TARGET * sq_peer,
        )
    )
    print(
        ratio_line(
            "submit->result",
            sub_bb,
            sub_peer,
            f"{SUBMIT_TARGET_MS:g} ms (absolute)",
            sub_bb * 1000 <= SUBMIT_TARGET_MS,
            unit="ms",
        )
    )
    print(
        ratio_line(
            f"{args.mib} x 1 MiB",
            mib_bb,
            mib_peer,
            f"{MIB_TARGET:g} x",
            mib_bb <= MIB_TARGET * mib_peer,
        )
    )
    print(
        ratio_line(
            f"{args.sleeps} x sleep({SLEEP_S}) on {SLEEP_VCPUS} vCPUs",
            bb["sleep"],
            peer["sleep"],
            f"{SLEEP_TARGET:g} x ideal {ideal:g} s = {SLEEP_TARGET * ideal:.2f} s "
            f"(batchbook/ideal = {bb['sleep'] / ideal:.3f} x)",
            bb["sleep"] <= SLEEP_TARGET * ideal,
        )
    )


if __name__ == "__main__":
    main()
