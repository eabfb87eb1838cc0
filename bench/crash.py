"""What a kill -9 costs a map: 2,000 inputs with the default retries=0, and mid-map a kill -9
of the service, of its fork server, or of the client that submitted the map. Then a new
client attaches to the map by name and waits for it. Counted from marks each input's
function leaves (a file when it starts, one when it ends):

- lost: inputs without a value at the end;
- run again: inputs whose function started more than once (its first run was in flight,
  or ended but not yet recorded, when the machine went away: it must run again);
- run at once: inputs whose runs overlapped in time (a retry beside a run still going),
  which must never happen.

    python bench/crash.py [--inputs 2000] [--seconds-per-input 0.005]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

HERE = Path(__file__).resolve()


def work(x: int, marks: str, seconds: float) -> int:
    """The function mapped: leaves a start and an end mark, with the time."""
    import time as t
    import uuid

    run = uuid.uuid4().hex[:8]
    with open(os.path.join(marks, f"{x}-{run}-s-{t.time_ns()}"), "w"):
        pass
    t.sleep(seconds)
    with open(os.path.join(marks, f"{x}-{run}-e-{t.time_ns()}"), "w"):
        pass
    return x


def client(state: str, marks: str, n: int, seconds: float, name: str) -> None:
    """The client that submits the map and waits for it (the one killed in one scenario)."""
    import batchbook as batch

    batch.use(state_dir=state)
    job = batch.map(work, range(n), [marks] * n, [seconds] * n, name=name)
    print(job.job_id, flush=True)
    job.wait(progress=False)


def started_inputs(marks: Path) -> int:
    return len({p.name.split("-", 1)[0] for p in marks.iterdir() if "-s-" in p.name})


def runs(marks: Path) -> dict[int, list[tuple[int, int | None]]]:
    """Per input: (start, end or None) of each run of its function."""
    by_run: dict[tuple[int, str], list[int | None]] = {}
    for p in marks.iterdir():
        x, run, kind, at = p.name.split("-")
        slot = by_run.setdefault((int(x), run), [None, None])
        slot[0 if kind == "s" else 1] = int(at)
    out: dict[int, list[tuple[int, int | None]]] = {}
    for (x, _), (start, end) in by_run.items():
        if start is not None:
            out.setdefault(x, []).append((start, end))
    return out


def overlapping(spans: list[tuple[int, int | None]]) -> bool:
    """Whether two runs that both ended overlapped. A run with no end mark died where it
    was (one that went on beside its retry, as before the fork server's attempts were
    killed first, ends and leaves its mark: then it shows here)."""
    ended = sorted((start, end) for start, end in spans if end is not None)
    return any(b[0] < a[1] for a, b in itertools.pairwise(ended))


def scenario(kill: str, n: int, seconds: float) -> dict[str, int]:
    import batchbook as batch
    from batchbook.server.discovery import stop_service

    root = Path(tempfile.mkdtemp(prefix=f"crash-{kill}-"))
    state, marks = root / "state", root / "marks"
    marks.mkdir()
    name = f"crash-{kill}"
    proc = subprocess.Popen(
        [sys.executable, str(HERE), "--client", str(state), str(marks), str(n), str(seconds), name],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    proc.stdout.readline()  # submitted
    while started_inputs(marks) < n * 0.3:  # the bench waits a third of the way in
        time.sleep(0.05)
    service_pid = json.loads((state / "service.json").read_text())["pid"]
    if kill == "service":
        os.kill(service_pid, signal.SIGKILL)
    elif kill == "fork server":
        [fork_server] = [
            p
            for p in psutil.Process(service_pid).children()
            if "batchbook.runtime.forkserver" in " ".join(p.cmdline())
        ]
        fork_server.kill()
    else:
        proc.kill()
    started = time.monotonic()
    batch.use(state_dir=state)  # finds the service, or starts a new one on the state dir
    job = batch.attach(name)
    frame = job.wait(timeout=600, progress=False).to_frame()
    elapsed = time.monotonic() - started
    proc.kill()
    proc.wait()
    stop_service(state)
    seen = runs(marks)
    return {
        "lost": int((frame["status"] != "SUCCEEDED").sum()),
        "run again": sum(len(s) > 1 for s in seen.values()),
        "run at once": sum(overlapping(s) for s in seen.values()),
        "seconds to finish after the kill": round(elapsed, 1),
    }


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--client":
        state, marks, n, seconds, name = sys.argv[2:7]
        client(state, marks, int(n), float(seconds), name)
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", type=int, default=2000)
    parser.add_argument("--seconds-per-input", type=float, default=0.005)
    args = parser.parse_args()
    results = {
        kill: scenario(kill, args.inputs, args.seconds_per_input)
        for kill in ("service", "fork server", "client")
    }
    for kill, r in results.items():
        print(f"kill -9 of the {kill} mid-map ({args.inputs} inputs, retries=0): {r}")
    lost = sum(r["lost"] for r in results.values())
    at_once = sum(r["run at once"] for r in results.values())
    print(
        f"ratio: inputs lost {lost} of {3 * args.inputs} (target 0); run at once beside a "
        f"retry {at_once} (target 0)"
    )


if __name__ == "__main__":
    main()
