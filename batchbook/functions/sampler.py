"""An estimate's sample, both sides: ``run_sample`` starts one fresh interpreter per sampled
input, as a Batch worker would run it, and reads its peak memory when it ends (os.wait4);
in it, ``python -m batchbook.functions.sampler RESULT`` reads the pickled (function, args,
kwargs) on stdin, runs it and writes how long it took (and how it ended) to RESULT."""

from __future__ import annotations

import json
import os
import pickle
import sys
import time
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Measured:
    """One sampled input: the function's seconds, the interpreter's start before it, the
    process's peak memory, and how it ended."""

    index: int
    seconds: float
    start_seconds: float
    peak_mib: float
    error: str | None = None
    capped: bool = False  # stopped at the time cap: ``seconds`` is a floor


def spread(n: int, k: int) -> list[int]:
    """``k`` indices spread evenly over ``range(n)``, first and last included."""
    if k >= n:
        return list(range(n))
    if k == 1:
        return [0]
    return sorted({round(i * (n - 1) / (k - 1)) for i in range(k)})


def run_sample(
    pickled_func: bytes,
    args: list[tuple[Any, ...]],
    kwargs: dict[str, Any],
    k: int,
    time_cap: float | None,
) -> list[Measured]:
    """Run ``k`` of the inputs, each in a fresh interpreter (as many at once as this machine
    has cores), and measure them. Interrupted (Ctrl-C), it kills them and stops at once."""
    from concurrent.futures import ThreadPoolExecutor

    indices = spread(len(args), k)
    children = _Children()
    pool = ThreadPoolExecutor(max(1, min(len(indices), os.cpu_count() or 1)))
    try:
        futures = [
            pool.submit(_run_one, children, i, pickled_func, args[i], kwargs, time_cap)
            for i in indices
        ]
        return [f.result() for f in futures]
    except BaseException:
        children.kill_all()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


class _Children:
    """The sample's interpreters: killed by the time cap or an interrupt only while they are
    not reaped yet (so a pid used again by then is never signalled)."""

    def __init__(self) -> None:
        import threading

        self.lock = threading.Lock()
        self.running: dict[int, Any] = {}
        self.stopped = False

    def start(self, argv: list[str]) -> Any:
        import subprocess

        with self.lock:
            if self.stopped:
                raise KeyboardInterrupt
            proc = subprocess.Popen(
                argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            self.running[proc.pid] = proc
            return proc

    def kill(self, pid: int) -> None:
        with self.lock:
            if pid in self.running:
                self.running[pid].kill()

    def kill_all(self) -> None:
        with self.lock:
            self.stopped = True
            for proc in self.running.values():
                proc.kill()

    def wait(self, proc: Any) -> tuple[int, Any]:
        """Its exit status and resource usage, once it ended (reaped under the lock)."""
        os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)  # ended, not reaped yet
        with self.lock:
            del self.running[proc.pid]
            _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        return proc.returncode, usage


def _run_one(
    children: _Children,
    index: int,
    pickled_func: bytes,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    time_cap: float | None,
) -> Measured:
    import tempfile
    import threading

    from batchbook.functions.pickling import dumps  # the parent's side only

    payload = dumps((_Loaded(pickled_func), args, kwargs), f"input {index} of the sample")
    with tempfile.NamedTemporaryFile("r", suffix=".json") as result:
        began = time.perf_counter()
        proc = children.start([sys.executable, "-m", "batchbook.functions.sampler", result.name])
        timer = threading.Timer(time_cap, children.kill, (proc.pid,)) if time_cap else None
        if timer:
            timer.start()
        try:
            try:
                proc.stdin.write(payload)
                proc.stdin.close()
            except BrokenPipeError:
                pass
            code, usage = children.wait(proc)
        finally:
            if timer:
                timer.cancel()
        wall = time.perf_counter() - began
        text = result.read()
    peak = usage.ru_maxrss / 1024  # KiB on Linux
    try:
        measured = json.loads(text)
    except ValueError:  # killed before it wrote (all of) it: at the cap, or by the system
        capped = time_cap is not None and wall >= time_cap
        error = None if capped else f"the interpreter ended with status {code}"
        return Measured(index, wall, 0.0, peak, error, capped)
    seconds = measured["seconds"]
    return Measured(index, seconds, max(0.0, wall - seconds), peak, measured["error"])


class _Loaded:
    """The pickled function, loaded on the other side (pickled once, sent to each input)."""

    def __init__(self, pickled: bytes):
        self.pickled = pickled

    def __reduce__(self) -> tuple[Any, ...]:
        return (pickle.loads, (self.pickled,))


def main() -> int:
    began = time.perf_counter()
    func, args, kwargs = pickle.loads(sys.stdin.buffer.read())
    loaded = time.perf_counter()
    error = None
    try:
        func(*args, **kwargs)
    except BaseException as e:
        error = f"{type(e).__name__}: {e}"[:500]
    ended = time.perf_counter()
    with open(sys.argv[1], "w") as out:
        json.dump({"start": loaded - began, "seconds": ended - loaded, "error": error}, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
