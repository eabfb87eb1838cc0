"""The worker side of a map: ``python -m batchbook.runner <store url> <run id>``.

Runs chunk ``AWS_BATCH_JOB_ARRAY_INDEX`` (0 for a plain job) of the run: loads the
function and the chunk's inputs (or, for a chained map, the results of the same
chunk of the source run), skips inputs an earlier attempt already finished, and
appends the results of finished inputs every 100 ms (at once after a failure).

The map's ``retries=`` are counted here, per input, not by Batch's attempts: an input runs
again only while it has failed at most ``retries`` times. Batch gives the job extra
attempts for what is not the inputs' fault (a lost host: see submission.retry_strategy).
Exit status: 0 when every input of the chunk has a value; EXIT_FAILED when some raised
and may run again (Batch retries the chunk, and the retry re-runs only those); EXIT_FINAL
when none may (each failed ``retries + 1`` times, or raised outside ``retry_on``): the
job's rules then stop retrying.
"""

from __future__ import annotations

import json
import os
import pickle
import resource
import sys
import time
import traceback
from typing import Any

from batchbook.functions.checkpoints import working_on
from batchbook.functions.firing import firing_run
from batchbook.functions.keptoutput import OutputKeeper
from batchbook.functions.objects import ObjectStore, open_store
from batchbook.functions.options import chunk_bounds_of
from batchbook.functions.outputs import _ROOT as _OUTPUT_ROOT
from batchbook.functions.outputs import drop_outputs, keep_outputs
from batchbook.functions.payload import (
    INLINE,
    OUT_OF_BAND,
    Outcome,
    attempt_of,
    block,
    chunk_span,
    encode_value,
    read_blocks,
    read_part,
    results_key,
    results_prefix,
    run_key,
)
from batchbook.functions.pickling import culprit, register_sources
from batchbook.interpreter import describe, differences, mismatch_message
from batchbook.vocabulary import MAX_ATTEMPTS

EXIT_FAILED = 1
EXIT_FINAL = 2
EXIT_STORE = 3  # the run could not be read from the object store (retried: it may pass)
FLUSH_MS = 100  # results of quick inputs are written together, at most this long after they end
# ...or once this much is waiting: big results go out (and their memory is reused) at once
FLUSH_BYTES = 1 << 20


def finished_outcomes(
    store: ObjectStore, run_id: str, chunk: int, before: int = MAX_ATTEMPTS + 1
) -> dict[int, Outcome]:
    """The latest outcome of every input of a chunk, over its attempts before ``before``."""
    return {i: outs[-1] for i, outs in earlier_outcomes(store, run_id, chunk, before).items()}


def earlier_outcomes(
    store: ObjectStore, run_id: str, chunk: int, before: int
) -> dict[int, list[Outcome]]:
    """Every outcome of each input of a chunk over its attempts before ``before``, oldest first.

    Results left by an attempt numbered ``before`` itself (one a graceful stop interrupted
    and re-queued as not started, so it runs again under its number) are removed: the
    attempt starts afresh, and its records are its own."""
    found: dict[int, list[Outcome]] = {}
    for key, _ in store.list(results_prefix(run_id, chunk)):  # in attempt, then flush order
        number = attempt_of(key)
        if number < before:
            for outcome in read_blocks(store.get(key))[0]:
                found.setdefault(outcome.input, []).append(outcome)
        elif number == before:
            store.delete(key)
    return found


def load_chunk(store: ObjectStore, manifest: dict[str, Any], chunk: int) -> list[tuple[Any, ...]]:
    source = manifest.get("source")
    start, end = chunk_bounds_of(manifest["n"], manifest["chunksize"])[chunk]
    if source:  # chained: the inputs are the values of the same chunk of the source run
        done = finished_outcomes(store, source, chunk)
        return [(done[i].value(),) for i in range(start, end)]
    layout = manifest["payload"]
    at = layout["index"][0] + 8 * chunk
    index = read_part(store, manifest, [at, at + 16])
    return pickle.loads(read_part(store, manifest, list(chunk_span(layout, index))))


def run_chunk(store_url: str, run_id: str, chunk: int, attempt: int) -> int:
    try:
        store = open_store(store_url)
        manifest = json.loads(bytes(store.get(run_key(run_id, "run.json"))))
        if "schedule" in manifest:  # a schedule's template: this job is one of its firings
            manifest = firing_run(store, manifest, os.environ.get("AWS_BATCH_JOB_ID", ""))
            run_id = manifest["id"]
    except Exception as e:  # no credentials, no route, no such bucket...: say where and why
        print(
            f"batchbook worker: cannot read run {run_id} from the object store {store_url}: "
            f"{type(e).__name__}: {e}",
            file=sys.stderr,
        )
        return EXIT_STORE
    layout = manifest["payload"]
    problems = _environment_problems(manifest)
    if problems:  # the function would not load, or not behave, as it did where it was pickled
        _fail_all(store, manifest, chunk, attempt, "environment", mismatch_message(problems))
        return EXIT_FINAL
    if "sources" in layout:  # tracebacks show the submitted cells and files, line by line
        register_sources(json.loads(read_part(store, manifest, layout["sources"])))
    func = pickle.loads(read_part(store, manifest, layout["function"]))
    kwargs = (
        pickle.loads(read_part(store, manifest, layout["kwargs"])) if manifest["kwargs"] else {}
    )
    retry_on = tuple(manifest.get("retryOn") or ())
    runs_allowed = manifest["options"].get("retries", 0) + 1  # per input
    start = manifest["chunksize"] * chunk
    inputs = load_chunk(store, manifest, chunk)
    earlier = earlier_outcomes(store, run_id, chunk, attempt)
    done = {i for i, outs in earlier.items() if any(o.ok for o in outs)}
    failures = {i: len(outs) for i, outs in earlier.items() if i not in done}
    spent = {  # failed as often as allowed, or with an exception no retry is for
        i
        for i, n in failures.items()
        if n >= runs_allowed or not _retryable(earlier[i][-1], retry_on)
    }
    done |= spent
    current = working_on(store, manifest)  # for batch.checkpoint, restore and output_dir
    output_root = _OUTPUT_ROOT
    per_input = manifest["options"].get("timeoutPerInput")
    if per_input:
        func = _with_deadline(func, per_input)
    flushes = 0  # this attempt's result objects so far
    failed = retryable = 0
    lines = _LineCounter()
    pending: list[tuple[Any, ...]] = []  # ended inputs not yet written: every FLUSH_MS, at the end
    # the loop is hot for tiny functions
    clock, mark, peak, inline, encode = time.time_ns, lines.mark, _peak_kib, INLINE, encode_value
    keeper = lines.keeper
    kept = keeper.take
    flushed_at = peaked_at = clock() // 1_000_000
    unwritten = 0  # bytes of pickled values in pending
    peak_kib = peak()
    for index, args in enumerate(inputs, start):
        if index in done:
            continue
        began, log_start = clock() // 1_000_000, mark()
        current[0] = index
        try:
            value = func(*args, **kwargs)
            kind = type(value)
            if kind in inline and (kind is not str or len(value) < OUT_OF_BAND):
                payload, ok = value, True
            else:
                try:
                    (payload, size), ok = encode(value), True
                except Exception as e:
                    payload, ok = _unpicklable_payload(value, e), False
                    failed += 1
                    retryable += not retry_on and failures.get(index, 0) + 1 < runs_allowed
                else:
                    unwritten += size
        except (Exception, SystemExit) as e:  # every failure of the user's code is recorded
            failed += 1
            wanted = not retry_on or any(_is_a(e, name) for name in retry_on)
            retryable += wanted and failures.get(index, 0) + 1 < runs_allowed
            payload, ok = _error_payload(e, wanted), False
        stopped = clock() // 1_000_000
        if stopped != peaked_at:  # getrusage at most once a millisecond
            peak_kib, peaked_at = peak(), stopped
        if output_root[0] is not None:  # it used batch.output_dir(): its files go now
            keep_outputs(store, run_id, index)
        output = kept()
        if output is not None:  # what it printed counts towards the block's size too
            unwritten += keeper.kept_chars
        pending.append(
            (index, ok, payload, attempt, began, stopped, peak_kib, log_start, mark(), output)
        )
        if (
            stopped - flushed_at >= FLUSH_MS
            or not ok
            or unwritten >= FLUSH_BYTES
            or type(payload) is tuple  # it holds the value's own buffers: before they change
        ):
            store.put(results_key(run_id, chunk, attempt, flushes), block(pending))
            flushes += 1
            pending.clear()
            flushed_at, unwritten = stopped, 0
    if pending:
        store.put(results_key(run_id, chunk, attempt, flushes), block(pending))
    drop_outputs()
    if not failed:
        return EXIT_FINAL if spent else 0  # inputs that failed earlier as often as allowed
    return EXIT_FAILED if retryable else EXIT_FINAL


class _LineCounter:
    """Counts the lines the function prints (stdout and stderr share one log stream), and
    keeps the head and tail of each input's output for its result."""

    def __init__(self) -> None:
        self.lines = 0
        self.dirty = False  # written to since the last mark
        self.keeper = OutputKeeper()
        self.streams = [_Counted(sys.stdout, self), _Counted(sys.stderr, self)]
        sys.stdout, sys.stderr = self.streams  # type: ignore[assignment]

    def mark(self) -> int:
        if self.dirty:  # flush so the lines reach the log before the next input's
            for stream in self.streams:
                stream.flush()
            self.dirty = False
        return self.lines


class _Counted:
    def __init__(self, stream: Any, counter: _LineCounter):
        self._stream, self._counter = stream, counter

    def write(self, text: str) -> int:
        self._counter.lines += text.count("\n")
        self._counter.dirty = True
        self._counter.keeper.write(text)
        return self._stream.write(text)

    def flush(self) -> None:
        self._stream.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def _with_deadline(func: Any, seconds: float) -> Any:
    """``func``, made to raise TimeoutError in an input that runs past ``seconds``."""
    import signal

    def expired(_signum: int, _frame: Any) -> None:
        raise TimeoutError(f"the input ran past its timeout_per_input of {seconds:g} s")

    signal.signal(signal.SIGALRM, expired)

    def timed(*args: Any, **kwargs: Any) -> Any:
        __tracebackhide__ = True
        signal.setitimer(signal.ITIMER_REAL, seconds)
        try:
            return func(*args, **kwargs)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)

    return timed


def _error_payload(e: BaseException, retryable: bool = True) -> bytes:
    """The failure as the client shows it; ``retryable``: whether retry_on lets it run again."""
    tb = e.__traceback__.tb_next if e.__traceback__ else None  # this module's frame: not shown
    while tb is not None and "__tracebackhide__" in tb.tb_frame.f_locals:  # as pytest hides
        tb = tb.tb_next
    text = "".join(traceback.format_exception(type(e), e, tb))
    return pickle.dumps(
        {"type": type(e).__qualname__, "message": str(e), "traceback": text, "retry": retryable},
        protocol=pickle.HIGHEST_PROTOCOL,
    )


def _environment_problems(manifest: dict[str, Any]) -> list[str]:
    """How this interpreter differs from the one the run was pickled in (empty: it matches)."""
    there = manifest.get("environment")
    if not there:
        return []
    here = describe(list(there["versions"]), there.get("dists"))
    return differences(there, here)


def _fail_all(
    store: ObjectStore, manifest: dict[str, Any], chunk: int, attempt: int, stage: str, message: str
) -> None:
    """Record the same failure for every input of the chunk that an earlier attempt did not
    finish (before any of them ran): a value once back is never overwritten."""
    start, end = chunk_bounds_of(manifest["n"], manifest["chunksize"])[chunk]
    done = {i for i, o in finished_outcomes(store, manifest["id"], chunk, attempt).items() if o.ok}
    now = time.time_ns() // 1_000_000
    error = _stage_error(stage, message)
    outcomes = [
        (i, False, error, attempt, now, now, _peak_kib(), 0, 0, None)
        for i in range(start, end)
        if i not in done
    ]
    if outcomes:
        store.put(results_key(manifest["id"], chunk, attempt, 0), block(outcomes))
    print(f"batchbook worker: {message}", file=sys.stderr)


def _stage_error(stage: str, message: str) -> bytes:
    """The error payload of a failure of batchbook's own, at ``stage``, not of the function."""
    return pickle.dumps(
        {"type": STAGE_ERRORS[stage], "message": message, "traceback": None, "stage": stage},
        protocol=pickle.HIGHEST_PROTOCOL,
    )


# stage -> the batchbook.errors class the client raises for it (see MapJob._error)
STAGE_ERRORS = {"result": "SerializationError", "environment": "EnvironmentMismatch"}


def _unpicklable_payload(value: Any, e: Exception) -> bytes:
    """The error of a result that cannot leave the worker: which part of it, and why."""
    message = (
        f"its result could not be pickled{culprit(value)}: {type(e).__name__}: {e}. Return "
        "plain data (numbers, strings, lists, dicts, arrays, frames): open files, locks, "
        "sockets and connections cannot leave the worker."
    )
    return _stage_error("result", message)


def _retryable(outcome: Outcome, retry_on: tuple[str, ...]) -> bool:
    """Whether an earlier failure may run again: as its attempt judged it (retry_on)."""
    if not retry_on:
        return True
    try:
        return bool(pickle.loads(outcome.payload).get("retry", True))
    except Exception:
        return True


def _is_a(e: BaseException, name: str) -> bool:
    return any(
        k.__qualname__ == name or f"{k.__module__}.{k.__qualname__}" == name
        for k in type(e).__mro__
    )


def _peak_kib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m batchbook.runner <store url> <run id>", file=sys.stderr)
        return 64
    chunk = int(os.environ.get("AWS_BATCH_JOB_ARRAY_INDEX", "0"))
    attempt = int(os.environ.get("AWS_BATCH_JOB_ATTEMPT", "1"))
    return run_chunk(args[0], args[1], chunk, attempt)


# This module is loaded into the fork server before a wave of chunks (batchbook serve
# --preload): a lookup made now leaves importlib.metadata's caches warm for every chunk's
# interpreter check (0.5 ms instead of 2.4 in each child).
describe(["cloudpickle"], {"cloudpickle": "cloudpickle"})
