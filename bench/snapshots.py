"""What it costs to look at a running 10,000-child array: ``status()`` then ``repr()``, and a
page of 50 children, with the Batch calls they make (counted with a botocore event hook).

Each figure is the median of 7 fresh looks (no snapshot reused), in a fresh process with a
service of its own, beside a baseline revision (default: the code before issue 15, whose
``status()`` described every unfinished child) checked out into a temporary git worktree
in the same run. Targets: status() + repr() <= 20 ms and <= 3 calls; a page <= 30 ms.

    python bench/snapshots.py [--baseline REV] [--children 10000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BASELINE = "8eae9cd"  # main before issue 15

CHILD = """
import json, os, statistics, sys, time
import batchbook as batch

state, gate, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
try:
    backend = batch.use(state_dir=state)
except TypeError:  # before issue 14: use(state_dir)
    backend = batch.use(state)


def held(x, gate):
    while x >= 100 and not os.path.exists(gate):
        time.sleep(0.05)
    return x


job = batch.map(held, range(n), [gate] * n, chunksize=1)
version = 0
while backend.describe([job.job_id])[0]["arrayProperties"]["statusSummary"]["SUCCEEDED"] < 100:
    version = backend.wait_for_change(version, 10)
calls = []
backend.batch._client.meta.events.register("before-call.batch", lambda **kw: calls.append(1))


def fresh_look():
    if hasattr(job, "_snapshot"):
        job._snapshot = None  # no snapshot reused: each look pays for itself
    del calls[:]
    started = time.perf_counter()
    job.status()
    repr(job)
    return time.perf_counter() - started, len(calls)


looks = [fresh_look() for _ in range(7)]
page = None
if hasattr(job, "snapshot"):
    times = []
    for _ in range(7):
        started = time.perf_counter()
        rows = job.snapshot(rows=slice(0, 50), status="RUNNABLE").rows
        times.append(time.perf_counter() - started)
        assert len(rows) == 50
    page = statistics.median(times)
job.cancel()
print(json.dumps({
    "look": statistics.median(t for t, _ in looks),
    "calls": max(c for _, c in looks),
    "page": page,
}))
"""


def measure(code: Path, work: Path, children: int) -> dict[str, float | None]:
    work.mkdir(parents=True)
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(work / "state"), str(work / "gate"), str(children)],
        env={"PYTHONPATH": str(code), "PATH": "/usr/bin:/bin", "HOME": str(work)},
        cwd=work, capture_output=True, text=True, timeout=1800,
    )  # fmt: skip
    if out.returncode:
        raise SystemExit(out.stderr[-3000:])
    from batchbook.server.discovery import stop_service

    stop_service(work / "state")
    return dict(json.loads(out.stdout.splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", default=BASELINE)
    parser.add_argument("--children", type=int, default=10_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-snapshots-") as tmp:
        old = Path(tmp) / "baseline"
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(old), args.baseline],
            check=True, capture_output=True,
        )  # fmt: skip
        try:
            now = measure(ROOT, Path(tmp) / "now", args.children)
            then = measure(old, Path(tmp) / "then", args.children)
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(old)])
    for label, m in (("batchbook", now), (f"baseline {args.baseline}", then)):
        page = f"{m['page'] * 1000:.1f} ms" if m["page"] is not None else "n/a"
        print(
            f"{label}: status() + repr() on a running {args.children:,}-child array "
            f"{m['look'] * 1000:.1f} ms, {m['calls']} Batch calls; a page of 50 children {page}"
        )
    look, page = now["look"] * 1000, (now["page"] or 0) * 1000
    print(
        f"ratio: status()+repr() batchbook/baseline = {now['look'] / then['look']:.3f} x "
        f"(batchbook {look:.1f} ms in {now['calls']} calls, baseline "
        f"{then['look'] * 1000:.0f} ms in {then['calls']} calls); target <= 20 ms and <= 3 "
        f"calls: {'met' if look <= 20 and now['calls'] <= 3 else 'NOT met'}; page of 50 "
        f"{page:.1f} ms, target <= 30 ms: {'met' if page <= 30 else 'NOT met'}"
    )


if __name__ == "__main__":
    main()
