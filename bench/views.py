"""What a live job view costs in a real kernel while a 10,000-child array runs: the kernel
time of one refresh (a fresh snapshot, then the view rendered from it; median of 7) and
the comm messages per second the view sends, counted from the kernel's iopub traffic over
a window of the run. Beside it, in the same kernel, today's static display of the same job
(``_repr_html_`` from a fresh snapshot). Targets: a refresh <= 50 ms; <= 2 messages/s.

    python bench/views.py [--children 10000] [--window 10]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SETUP = """
import json, statistics, time
import batchbook as batch
from batchbook.notebook.views import JobView
batch.use(state_dir={state!r})
big = batch.map(abs, range({children}), chunksize=1)
view = JobView(big)
display(view)
"""

MEASURE = """
def timed(look):
    started = time.perf_counter()
    look()
    return time.perf_counter() - started

def refresh():
    view.refresh(big.snapshot(max_age=0))

def static():
    big.snapshot(max_age=0)._repr_html_()

out = {
    "refresh": statistics.median(timed(refresh) for _ in range(7)),
    "static": statistics.median(timed(static) for _ in range(7)),
    "model": view.live.model_id,
    "status": big.status(),
}
big.cancel()
print(json.dumps(out))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--children", type=int, default=10_000)
    parser.add_argument("--window", type=float, default=10.0, help="seconds of traffic counted")
    args = parser.parse_args()
    from batchbook.server.discovery import stop_service
    from tests.notebook.conftest import Kernel, start_kernel
    from tests.server.conftest import start

    with tempfile.TemporaryDirectory(prefix="bench-views-") as tmp:
        state = Path(tmp) / "state"
        start(state)
        km = start_kernel(Path(tmp) / "kernels")
        kernel = Kernel(km)
        try:
            kernel.ok(SETUP.format(state=str(state), children=args.children))
            model = kernel.value("view.live.model_id")
            counted, window_end = 0, time.monotonic() + args.window
            while time.monotonic() < window_end:  # the view's updates, as the kernel sends them
                try:
                    msg = kernel.client.get_iopub_msg(
                        timeout=max(0.01, window_end - time.monotonic())
                    )
                except Exception:
                    break
                content = msg["content"]
                if msg["msg_type"] == "comm_msg" and content.get("comm_id") == model:
                    counted += content["data"].get("method") == "update"
            rate = counted / args.window
            out = kernel.ok(MEASURE)
            m = json.loads(out.stdout.strip().splitlines()[-1])
        finally:
            kernel.client.stop_channels()
            km.shutdown_kernel(now=True)
            stop_service(state)
    refresh, static = m["refresh"] * 1000, m["static"] * 1000
    print(
        f"view of a running {args.children:,}-child array ({m['status']}): one refresh "
        f"{refresh:.1f} ms of kernel time (median of 7), {counted} updates in {args.window:.0f} s; "
        f"today's static display {static:.1f} ms"
    )
    print(
        f"ratio: view refresh/static display = {refresh / static:.2f} x (view {refresh:.1f} ms, "
        f"static {static:.1f} ms); target <= 50 ms: {'met' if refresh <= 50 else 'NOT met'}; "
        f"{rate:.2f} messages/s, target <= 2: {'met' if rate <= 2 else 'NOT met'}"
    )


if __name__ == "__main__":
    main()
