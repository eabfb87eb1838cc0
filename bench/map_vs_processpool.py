"""batch.map / batch.submit on the local service vs concurrent.futures.ProcessPoolExecutor.

Starts the service of a fresh temporary state dir (``batch.use``) and measures, end to
end (submit -> every result in a list, in input order):

1. 10,000 x ``x*x``: batchbook with its default chunking, warm (after one warm-up map),
   median of 5 runs; peer ``ProcessPoolExecutor(os.cpu_count())`` with ``chunksize=100``.
   Target: batchbook <= 5 x the peer.
2. One call, submit -> result: ``batch.submit(f, 3).result()``, median over 30 warm calls,
   vs ``pool.submit(f, 3).result()``. Target: <= 25 ms (absolute).
3. 200 results of 1 MiB each: batchbook default chunking vs the peer with ``chunksize=1``,
   median of 5 runs. Target: batchbook <= 2 x the peer.
4. 32 x ``time.sleep(0.5)`` on a 2-vCPU compute environment (a queue with maxvCpus=2,
   vcpus=1 per input), vs the ideal 32 x 0.5 s / 2 = 8 s. Target: <= 1.1 x ideal. The peer
   ``ProcessPoolExecutor(2)`` (chunksize=1) is run too, for reference.

The peer, in the same run, is used as a user keeping a pool would: each pool is created
once and warmed up (every worker started and has run each function) before anything is
timed, and only ``pool.map``/``pool.submit`` up to the last result is timed. The peer runs
first and its pools are shut down before batchbook is measured, so the two never share
the CPUs. For batchbook's last run of 1. and 3. the script also prints where the time went,
from the service's own clock (the chunks' startedAt/stoppedAt).

    python bench/map_vs_processpool.py [--quick]
"""

from __future__ import annotations

import argparse
import multiprocessing
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
from batchbook.functions.backend import create_queue
from batchbook.server.discovery import stop_service

N_SQUARES = 10_000
N_MIB = 200
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


def repeat(fn: Callable[[], Any], runs: int, check: Callable[[Any], None]) -> list[float]:
    """The wall time of each of ``runs`` calls of ``fn``, each result checked."""
    times = []
    for _ in range(runs):
        elapsed, out = timed(fn)
        check(out)
        times.append(elapsed)
    return times


def expect(what: str, expected: Callable[[Any], bool]) -> Callable[[Any], None]:
    def check(out: Any) -> None:
        if not expected(out):
            raise SystemExit(f"{what}: wrong results")

    return check


def check_squares(n: int) -> Callable[[Any], None]:
    squares = [x * x for x in range(n)]
    return expect("squares", lambda out: out == squares)


def check_mib(n: int) -> Callable[[Any], None]:
    return expect("1 MiB", lambda out: len(out) == n and all(len(b) == 1 << 20 for b in out))


def check_naps(n: int) -> Callable[[Any], None]:
    return expect("sleep", lambda out: out == [SLEEP_S] * n)


def one_calls(submit: Callable[[], Any], warmup: int, calls: int) -> list[float]:
    """submit -> result of ``square(3)``, one call at a time, after ``warmup`` calls."""
    for _ in range(warmup):
        submit().result()
    return repeat(lambda: submit().result(), calls, expect("submit", lambda out: out == 9))


def fmt(values: list[float]) -> str:
    return "/".join(f"{v:.3f}" for v in sorted(values))


def ratio_line(
    what: str, bb: float, peer: float, target: str, met: bool, unit: str = "s", extra: str = ""
) -> str:
    scale, digits = (1000, 2) if unit == "ms" else (1, 3)
    return (
        f"ratio: {what} batchbook/peer = {bb / peer:.1f} x (batchbook {bb * scale:.{digits}f} "
        f"{unit}, peer {peer * scale:.{digits}f} {unit}){extra}; target <= {target}: "
        f"{'met' if met else 'NOT met'}"
    )


def load() -> str:
    return "/".join(f"{x:.2f}" for x in os.getloadavg())


# ---------------------------------------------------------------- the peer
def warm_pool(pool: ProcessPoolExecutor, workers: int) -> None:
    """Start every worker (all busy at once, so none is reused) and run each function once."""
    list(pool.map(nap, [0.05] * workers))
    list(pool.map(square, range(workers * 100), chunksize=100))
    list(pool.map(mib, range(workers), chunksize=1))


def run_peer(args: argparse.Namespace) -> dict[str, Any]:
    cpus = os.cpu_count() or 1
    out: dict[str, Any] = {}
    with ProcessPoolExecutor(max_workers=cpus) as pool:
        warm_pool(pool, cpus)
        out["squares"] = repeat(
            lambda: list(pool.map(square, range(N_SQUARES), chunksize=100)),
            args.runs,
            check_squares(N_SQUARES),
        )
        out["submit"] = one_calls(lambda: pool.submit(square, 3), args.warmup_calls, args.calls)
        out["mib"] = repeat(
            lambda: list(pool.map(mib, range(N_MIB), chunksize=1)),
            args.runs,
            check_mib(N_MIB),
        )
    with ProcessPoolExecutor(max_workers=SLEEP_VCPUS) as pool:
        warm_pool(pool, SLEEP_VCPUS)
        out["sleep"], value = timed(lambda: list(pool.map(nap, [SLEEP_S] * args.sleeps)))
        check_naps(args.sleeps)(value)
    return out


# ---------------------------------------------------------------- batchbook
class Maps:
    """``batch.map(...).results()``, keeping the last MapJob and when (epoch ms) it was
    called, returned and had every result, to compare with the service's clock."""

    def __init__(self) -> None:
        self.last: Any = None
        self.called = self.submitted = self.done = 0.0

    def __call__(self, func: Callable[..., Any], inputs: Any, **options: Any) -> list[Any]:
        self.called = time.time() * 1000
        self.last = batch.map(func, inputs, **options)
        self.submitted = time.time() * 1000
        results = self.last.results()
        self.done = time.time() * 1000
        return results

    def breakdown(self, backend: Any) -> str:
        """Where the last map's time went (the chunks' times are the service's, 1 ms steps)."""
        chunks = backend.describe(self.last.chunk_job_ids)
        started = min(c["startedAt"] for c in chunks) - self.called
        stopped = max(c["stoppedAt"] for c in chunks) - self.called
        runs = sorted(c["stoppedAt"] - c["startedAt"] for c in chunks)
        return (
            f"batch.map() returned at {self.submitted - self.called:.0f} ms; the first chunk "
            f"started at {started:.0f} ms, the last stopped at {stopped:.0f} ms (a chunk ran "
            f"{runs[0]}..{statistics.median(runs):.0f}..{runs[-1]} ms, min..median..max); "
            f"every result in the list at {self.done - self.called:.0f} ms "
            f"({self.done - self.called - stopped:.0f} ms after the last chunk stopped)"
        )


def run_batchbook(args: argparse.Namespace, state_dir: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    out["start"], backend = timed(lambda: batch.use(state_dir=state_dir))
    maps = Maps()
    try:
        # 1. squares: one warm-up map (it also runs the pre-flight environment probe)
        out["first_map"], _ = timed(lambda: maps(square, range(N_SQUARES)))
        out["squares"] = repeat(
            lambda: maps(square, range(N_SQUARES)), args.runs, check_squares(N_SQUARES)
        )
        out["chunks"] = len(maps.last.chunks)
        out["squares_where"] = maps.breakdown(backend)
        # 2. one call
        out["submit"] = one_calls(lambda: batch.submit(square, 3), args.warmup_calls, args.calls)
        # 3. 1 MiB results (warm-up: a small map of the same function)
        maps(mib, range(2))
        out["mib"] = repeat(lambda: maps(mib, range(N_MIB)), args.runs, check_mib(N_MIB))
        out["mib_chunks"] = len(maps.last.chunks)
        out["mib_where"] = maps.breakdown(backend)
        # 4. sleeps on a 2-vCPU compute environment (warm-up: a map of zero-second naps)
        create_queue(backend.batch, SLEEP_QUEUE, SLEEP_VCPUS)
        maps(nap, [0.0] * SLEEP_VCPUS, queue=SLEEP_QUEUE)
        out["sleep"], value = timed(
            lambda: maps(nap, [SLEEP_S] * args.sleeps, vcpus=1, queue=SLEEP_QUEUE)
        )
        check_naps(args.sleeps)(value)
        out["sleep_chunks"] = len(maps.last.chunks)
    finally:
        stop_service(state_dir)
    return out


# ---------------------------------------------------------------- report
def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="a short run (fewer repetitions, 8 sleeps)"
    )
    args = parser.parse_args()
    args.runs, args.calls, args.warmup_calls, args.sleeps = 5, 30, 5, 32
    if args.quick:
        args.runs, args.calls, args.warmup_calls, args.sleeps = 2, 10, 2, 8
    cpus = os.cpu_count() or 1
    ideal = args.sleeps * SLEEP_S / SLEEP_VCPUS
    load_before = load()

    t0 = time.perf_counter()
    peer = run_peer(args)
    tmp = Path(tempfile.mkdtemp(prefix="bench-map-"))
    try:
        bb = run_batchbook(args, tmp / "state")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    total = time.perf_counter() - t0

    print(
        f"machine: {cpus} CPUs, Python {sys.version.split()[0]}, load average {load_before} "
        f"before, {load()} after ({total:.0f} s in all); batchbook imported from "
        f"{Path(batch.__file__).parent}"
    )
    print(
        f"batchbook: service started in {bb['start']:.2f} s on a fresh temporary state dir; "
        f"default queue maxvCpus={cpus}"
    )
    print(
        f"peer: concurrent.futures.ProcessPoolExecutor (start method "
        f"{multiprocessing.get_start_method()}), created once and warmed up (every worker "
        "started and has run each function) before timing, as a user keeping a pool would; "
        "only pool.map/pool.submit up to the last result is timed"
    )
    sq_bb, sq_peer = statistics.median(bb["squares"]), statistics.median(peer["squares"])
    print(
        f"1. {N_SQUARES:,} x x*x end to end: batchbook default chunking ({bb['chunks']} chunks): "
        f"first map {bb['first_map']:.3f} s (with the pre-flight probe), then {args.runs} warm "
        f"runs {fmt(bb['squares'])} s; ProcessPool({cpus}) chunksize=100: "
        f"{fmt(peer['squares'])} s"
    )
    print(f"   batchbook's last run: {bb['squares_where']}")
    sub_bb, sub_peer = statistics.median(bb["submit"]), statistics.median(peer["submit"])
    print(
        f"2. submit(f, 3).result(), {args.calls} warm calls: batchbook median "
        f"{sub_bb * 1000:.1f} ms (min {min(bb['submit']) * 1000:.1f}, max "
        f"{max(bb['submit']) * 1000:.1f}); ProcessPool median {sub_peer * 1000:.3f} ms"
    )
    mib_bb, mib_peer = statistics.median(bb["mib"]), statistics.median(peer["mib"])
    print(
        f"3. {N_MIB} x 1 MiB results end to end: batchbook default chunking "
        f"({bb['mib_chunks']} chunks) {fmt(bb['mib'])} s; ProcessPool({cpus}) chunksize=1 "
        f"{fmt(peer['mib'])} s"
    )
    print(f"   batchbook's last run: {bb['mib_where']}")
    print(
        f"4. {args.sleeps} x sleep({SLEEP_S}) on a queue with maxvCpus={SLEEP_VCPUS}, vcpus=1: "
        f"batchbook ({bb['sleep_chunks']} chunks) {bb['sleep']:.3f} s; "
        f"ProcessPool({SLEEP_VCPUS}) chunksize=1 {peer['sleep']:.3f} s; ideal {ideal:g} s"
    )
    print(
        ratio_line(
            f"{N_SQUARES:,} x x*x",
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
            f"{N_MIB} x 1 MiB",
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
            f"{SLEEP_TARGET * ideal:.2f} s ({SLEEP_TARGET:g} x ideal {ideal:g} s)",
            bb["sleep"] <= SLEEP_TARGET * ideal,
            extra=f"; batchbook/ideal = {bb['sleep'] / ideal:.3f} x",
        )
    )


if __name__ == "__main__":
    main()
