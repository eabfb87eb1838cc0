"""The first ``batch.map`` of a fresh process: 10 inputs to results, with the service running.

Timed from just before the ``batch.map`` call (after ``import batchbook as batch;
batch.use(...)``), the median of 3 fresh processes; the import and ``use()`` are reported
apart. The same is measured in the same run for a baseline revision of batchbook (default:
the code before issue 14, whose first map of a process submitted a pre-flight probe job),
checked out into a temporary git worktree with a service of its own. Target: <= 150 ms.

    python bench/first_map.py [--baseline REV] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BASELINE = "8eae9cd"  # main before issue 14: a probe job before the first map of a process
TARGET_MS = 150.0

CHILD = """
import json, sys, time
t0 = time.perf_counter()
import batchbook as batch
batch.map  # the function layer is imported on first use
t1 = time.perf_counter()
try:
    batch.use(state_dir=sys.argv[1])
except TypeError:  # before issue 14: use(state_dir)
    batch.use(sys.argv[1])
t2 = time.perf_counter()
results = batch.map(abs, range(-5, 5)).results()
t3 = time.perf_counter()
assert results == [abs(x) for x in range(-5, 5)], results
print(json.dumps({"import": t1 - t0, "use": t2 - t1, "map": t3 - t2}))
"""


def measure(code: Path, state: Path, runs: int) -> dict[str, float]:
    """Median seconds of each phase over ``runs`` fresh processes on ``code``'s batchbook."""
    env = {**os.environ, "PYTHONPATH": str(code)}
    serve = [sys.executable, "-m", "batchbook", "serve", "--state-dir", str(state)]
    state.parent.mkdir(parents=True, exist_ok=True)  # the cwd: `python -m` puts it on sys.path
    service = subprocess.Popen(serve, env=env, cwd=state.parent, stdout=subprocess.PIPE, text=True)
    try:
        assert service.stdout is not None
        service.stdout.readline()  # "batchbook service <url> ...": it answers
        samples = []
        for _ in range(runs):
            out = subprocess.run(
                [sys.executable, "-c", CHILD, str(state)],
                env=env, cwd=state.parent, capture_output=True, text=True, timeout=300,
                check=True,
            )  # fmt: skip
            samples.append(json.loads(out.stdout))
    finally:
        service.terminate()
        service.wait(60)
    return {k: statistics.median(s[k] for s in samples) for k in samples[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", default=BASELINE, help="git revision to compare with")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-first-map-") as tmp:
        work = Path(tmp)
        old = work / "baseline"
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(old), args.baseline],
            check=True, capture_output=True,
        )  # fmt: skip
        try:
            now = measure(ROOT, work / "now" / "state", args.runs)
            then = measure(old, work / "then" / "state", args.runs)
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(old)])
    for label, m in (("batchbook", now), (f"baseline {args.baseline}", then)):
        print(
            f"{label}: import {m['import'] * 1000:.0f} ms, use() {m['use'] * 1000:.0f} ms, "
            f"first map of 10 -> results {m['map'] * 1000:.1f} ms (median of {args.runs})"
        )
    verdict = "met" if now["map"] * 1000 <= TARGET_MS else "NOT met"
    print(
        f"ratio: first map batchbook/baseline = {now['map'] / then['map']:.2f} x "
        f"(batchbook {now['map'] * 1000:.1f} ms, baseline {then['map'] * 1000:.1f} ms); "
        f"target <= {TARGET_MS:.0f} ms: {verdict}"
    )


if __name__ == "__main__":
    main()
