"""MapJob: the handle of one map — status, waiting, results aligned to the inputs, a DataFrame.

Everything comes from two places: the Batch API (the array job and its children,
one per chunk of inputs) and the object store (one result frame per input).
"""

from __future__ import annotations

import dataclasses
import html
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from batchbook import display
from batchbook.errors import (
    ClientError,
    JobCannotRun,
    JobFailed,
    RemoteError,
    ResourceNotFound,
)
from batchbook.functions.diagnosis import Diagnosis, diagnose
from batchbook.functions.frame import FRAME_COLUMNS, column_names, describe_error, never_starts
from batchbook.functions.guard import Guard
from batchbook.functions.inputerrors import input_error
from batchbook.functions.inputlogs import input_logs
from batchbook.functions.ledger import read_ledger, record_deleted
from batchbook.functions.outputs import InputFiles
from batchbook.functions.payload import (
    Outcome,
    all_chunks,
    decode_value,
    payload_key,
    run_key,
    to_json,
)
from batchbook.functions.progress import TextBar
from batchbook.functions.runcost import RunCost, run_cost
from batchbook.functions.runstate import RunState
from batchbook.functions.snapshot import InputRow, Snapshot, input_row, page_children, place_inputs
from batchbook.functions.submission import resubmit
from batchbook.functions.watcher import shared_snapshot, watcher
from batchbook.vocabulary import (
    FINAL,
    MAX_DESCRIBE_JOBS,
    NEVER_STARTS,
    STATUSES,
)
from batchbook.wording import count

if TYPE_CHECKING:
    import pandas as pd


PROGRESS_SECONDS = 0.25
SNAPSHOT_SECONDS = 0.5  # how old a snapshot status() and repr may show
WHY_SECONDS = 2.0  # how often wait() asks why a map that has not started waits


# to_frame's columns and the dtype each is built with (object: values exactly as they are)
class MapJob(RunState):
    """One ``batch.map``: an array job whose child *i* runs chunk *i* of the inputs."""

    reused = False  # given back by reuse=True instead of submitted again

    def status(self) -> dict[str, int]:
        """How many inputs are in each status (Batch's names; SUCCEEDED means a value is back),
        from a snapshot at most half a second old."""
        return self.snapshot().counts()

    def snapshot(
        self,
        max_age: float = SNAPSHOT_SECONDS,
        rows: slice | None = None,
        status: str | None = None,
    ) -> Snapshot:
        """How the map stands: counts per input, elapsed time, throughput, ETA, why it waits;
        reused for ``max_age`` seconds. ``rows`` (with ``status``): a page of its children
        (ListJobs pages), e.g. ``snapshot(rows=slice(0, 50), status="FAILED")``."""
        with self._lock:
            snap = self._snapshot
            shared = shared_snapshot(self.backend, self.id)  # if the watcher watches this run
            if shared is not None and (snap is None or shared.taken > snap.taken):
                snap = shared
            # A snapshot taken before the run was known to be final is stale once it is (the
            # watcher's, say, when wait() returns): never report it after that.
            stale = snap is not None and self.done and not snap.final
            if snap is None or stale or time.monotonic() - snap.taken > max_age:
                snap = self._snapshot = self._take_snapshot()
            if rows is None:
                return snap
            found, calls = page_children(
                self.backend.batch, self._parent, len(self.chunks), rows, status
            )
            return dataclasses.replace(snap, rows=tuple(found), calls=calls)

    def _take_snapshot(self) -> Snapshot:
        taken = time.monotonic()  # what it shows is as of now or a little later
        self._check_stored()
        calls = 1
        (self._parent,) = self.backend.describe([self.job_id])
        known: dict[int, str] = {}
        reasons: dict[int, str] = {}  # failed chunks -> why, as Batch says
        if self.follow_ups:  # inputs a retry_failed() run holds: each input's own state
            calls += self._describe_unfinished_chunks()
            self._read_outcomes(self._final_chunks())
            for follow_up in self.follow_ups:
                follow_up._refresh(details=True)
            statuses: dict[str, int] = dict.fromkeys(STATUSES, 0)
            for i in range(self.size):
                statuses[self._input_state(i)[0]] += 1
            placed: tuple[str, ...] = ()  # input_rows() asks each input
        else:
            if len(self.chunks) == 1:
                self._details[0] = self._parent
            elif len(self.chunks) <= MAX_DESCRIBE_JOBS:
                calls += self._describe_unfinished_chunks()
            else:  # the children that matter per input, a ListJobs page each
                summary = self._parent.get("arrayProperties", {}).get("statusSummary", {})
                for wanted in ("RUNNING", "STARTING", "FAILED"):
                    if summary.get(wanted):
                        found, pages = page_children(
                            self.backend.batch,
                            self._parent,
                            len(self.chunks),
                            slice(0, None),
                            wanted,
                        )
                        calls += pages
                        known.update((c["arrayProperties"]["index"], wanted) for c in found)
                        reasons.update(
                            (c["arrayProperties"]["index"], c.get("statusReason", ""))
                            for c in found
                            if wanted == "FAILED"
                        )
            known.update((i, d["status"]) for i, d in self._details.items())
            reasons.update(
                (i, d.get("statusReason", ""))
                for i, d in self._details.items()
                if d["status"] == "FAILED"
            )
            self._chunk_status = known
            self._read_outcomes(c for c, status in known.items() if status in FINAL)
            done_in = [0] * len(self.chunks)
            size = self.manifest["chunksize"]
            for i, o in self._outcomes.items():
                if o.ok:
                    done_in[i // size] += 1
            summary = self._parent.get("arrayProperties", {}).get("statusSummary") or {
                self._parent["status"]: 1
            }
            statuses, placed = place_inputs(self.chunks, done_in, known, summary)
        final = self.done
        reason = None
        if not final and statuses["SUCCEEDED"] == 0 and not statuses["RUNNING"]:
            reason = self.why_waiting()  # nothing runs: can anything ever?
            calls += len(self.chunks) > 1
        created = self.manifest["created"]
        end = self._parent.get("stoppedAt") if final else None
        return Snapshot(
            name=self.name,
            job_id=self.job_id,
            size=self.size,
            taken=taken,
            statuses=statuses,
            elapsed=((end or time.time() * 1000) - created) / 1000,
            final=final,
            reason=reason,
            calls=calls,
            chunk_statuses=placed,
            chunk_reasons=reasons,
        )

    def input_rows(self, snap: Snapshot | None = None) -> list[InputRow]:
        """One row per input (status, attempt, times, what went wrong) from a snapshot (the
        latest by default) and the results read with it: no further Batch call."""
        snap = snap or self.snapshot()
        with self._lock:
            if snap is not self._snapshot:  # another handle took it: read what it read
                self._read_outcomes()
            outcomes, size, kept = self._outcomes, self.manifest["chunksize"], self._rows
            rows = []
            for i in range(self.size):
                if snap.chunk_statuses:
                    outcome = outcomes.get(i)
                    if outcome is not None and outcome.ok:  # done: its row never changes
                        hit = kept.get(i)
                        if hit is None or hit.attempt != outcome.attempt:
                            hit = kept[i] = input_row(i, "SUCCEEDED", outcome, None)
                        rows.append(hit)
                        continue
                    status = snap.chunk_statuses[i // size]
                else:  # a retry_failed() run holds some: each input's own state
                    status, outcome, _ = self._input_state(i)
                rows.append(input_row(i, status, outcome, snap.chunk_reasons.get(i // size)))
            return rows

    def earlier_rows(self) -> list[InputRow]:
        """A row for each attempt an input had before its latest one (for timelines)."""
        with self._lock:
            return [input_row(o.input, "FAILED", o, None) for o in self.earlier]

    # ------------------------------------------------------------------ waiting
    def wait(self, timeout: float | None = None, progress: bool = True) -> MapJob:
        """Block until every input is final (or ``timeout`` seconds): in a kernel, the live
        job view shows meanwhile; in a terminal, a text bar."""
        deadline = None if timeout is None else time.monotonic() + timeout
        bar = TextBar(self.size) if progress and sys.stderr.isatty() else None
        if progress and bar is None:
            display.show_live("MapJob", self)  # it follows the run from the watcher thread
        started = next_why = time.monotonic()
        while True:
            self._refresh()
            if bar is not None:  # a snapshot: failures counted once final, not while retried
                snap = self.snapshot(max_age=PROGRESS_SECONDS)
                bar.show(snap.done, snap.failed, time.monotonic() - started)
            left = None if deadline is None else deadline - time.monotonic()
            if self.done or (left is not None and left <= 0):
                break
            if not self._outcomes and time.monotonic() >= next_why:  # nothing ran: stuck?
                next_why = time.monotonic() + WHY_SECONDS
                reason = self.why_waiting()
                if reason is not None:
                    if bar is not None:
                        bar.close()
                    raise JobCannotRun(
                        f"map {self.name}: its children can never start on queue "
                        f"{self.manifest['options']['queue']}: {reason} Ask for less (vcpus=, "
                        "memory=, gpus=) or use a queue with bigger compute environments; "
                        "cancel() it meanwhile."
                    )
            # Wake when the array is final; a progress bar redraws 4 times a second meanwhile.
            step = PROGRESS_SECONDS if bar is not None else 10
            waiting = [self.job_id, *(f.job_id for f in self.follow_ups if not f.done)]
            self._version = self.backend.wait_for_change(
                self._version, step if left is None else min(left, step), waiting
            )
        if bar is not None:
            snap = self.snapshot(max_age=0)  # the last line says how it ended
            bar.show(snap.done, snap.failed, time.monotonic() - started, last=True)
            bar.close()
        return self  # the last _refresh read every result; per-chunk details come when asked

    def as_completed(self, return_exceptions: bool = False) -> Iterator[tuple[int, Any]]:
        """``(index, result)`` as inputs finish; a failed input raises unless ``return_exceptions``.

        Each round is a snapshot (a few calls, whatever the number of children), then a wait
        for news; only the children that failed are described, for their reasons.
        """
        given: set[int] = set()
        while len(given) < self.size:
            snap = self.snapshot(max_age=0)
            if self.follow_ups:  # inputs a retry_failed() run holds: each input's own state
                ready = [i for i in range(self.size) if self._input_state(i)[0] in FINAL]
            else:
                failed = {c for c, status in self._chunk_status.items() if status == "FAILED"}
                if snap.final:
                    failed = set(range(len(self.chunks)))
                outcomes = self._outcomes
                ready = [i for i, o in outcomes.items() if o.ok]
                unfinished = {  # failed chunks' inputs without a value: they are final too
                    c: [i for i in range(*self.chunks[c]) if not (i in outcomes and outcomes[i].ok)]
                    for c in failed
                }
                unfinished = {c: inputs for c, inputs in unfinished.items() if inputs}
                self._describe_chunks(  # for their reasons
                    [
                        c
                        for c in sorted(unfinished)
                        if self._details.get(c, {}).get("status") not in FINAL
                    ]
                )
                ready += [i for inputs in unfinished.values() for i in inputs]
            for i in sorted(set(ready) - given):
                given.add(i)
                yield i, self._result(i, return_exceptions)
            if len(given) < self.size:
                self._version = self.backend.wait_for_change(self._version, 10)

    def __iter__(self) -> Iterator[tuple[int, Any]]:
        return self.as_completed()

    # ------------------------------------------------------------------ results
    def _result(self, index: int, return_exceptions: bool) -> Any:
        status, outcome, detail = self._input_state(index)
        if status == "SUCCEEDED" and outcome is not None:
            return outcome.value()
        error = self._error(index, status, outcome, detail)
        if return_exceptions:
            return error
        raise error

    def _error(
        self, index: int, status: str, outcome: Outcome | None, detail: dict[str, Any] | None
    ) -> Exception:
        return input_error(self, index, status, outcome, detail)

    def result_of_final(self, detail: dict[str, Any], index: int) -> Any:
        """The result of input ``index`` of a one-chunk map, given its final DescribeJobs detail."""
        self._check_stored()
        with self._lock:
            self._read_outcomes([0])
            self._parent = self._details[0] = detail
            return self._result(index, return_exceptions=False)

    def results(self, return_exceptions: bool = False, timeout: float | None = None) -> list[Any]:
        """The results in input order (waits first); the first failure raises unless ``return_exceptions``."""
        self.wait(timeout, progress=False)
        outcomes = self._outcomes
        if (
            not self.follow_ups
            and len(outcomes) == self.size
            and all(o.ok for o in outcomes.values())
        ):
            # every input has a value: skip the per-input bookkeeping
            return [decode_value(outcomes[i].payload) for i in range(self.size)]
        self._refresh(details=True)  # failures: their chunks' reasons
        return [self._result(i, return_exceptions) for i in range(self.size)]

    def exceptions(self) -> dict[int, Exception]:
        """The failed inputs: index -> RemoteError (with the remote traceback) or JobFailed."""
        self._refresh(details=True)
        out = {}
        for i in range(self.size):
            status, outcome, detail = self._input_state(i)
            if status == "FAILED":
                out[i] = self._error(i, status, outcome, detail)
        return out

    def inputs(self) -> list[tuple[Any, ...]]:
        """The argument tuples of every input, read back from the object store."""
        self._check_stored()
        store = self.backend.store
        if self.manifest.get("source"):  # chained: the inputs are the source map's results
            source = MapJob.load(self.backend, self.manifest["source"])
            source._refresh(details=True)  # as they are now: an unfinished one shows as such
            return [(source._result(i, return_exceptions=True),) for i in range(self.size)]
        return all_chunks(self.manifest["payload"], store.get(payload_key(self.manifest)))

    def to_frame(self) -> pd.DataFrame:
        """One row per input: input, result, status, error, traceback, attempts, times, memory, log, job.

        Each column is built with its own dtype, never inferred from rows: ``result`` and
        ``input`` hold the values exactly as returned and given (ints stay ints, None stays
        None), the text columns are objects with None where there is nothing to say.
        """
        import pandas as pd

        self._refresh(details=True)
        columns: dict[str, list[Any]] = {name: [] for name, _ in FRAME_COLUMNS}
        inputs = self.inputs()
        costs = run_cost(self).per_input
        for i, args in enumerate(inputs):
            status, outcome, detail = self._input_state(i)
            ok = status == "SUCCEEDED" and outcome is not None
            error = None if ok or status not in FINAL else self._error(i, status, outcome, detail)
            attempts = (detail or {}).get("attempts", [])
            number = outcome.attempt if outcome else len(attempts)
            stream = None
            if 0 < number <= len(attempts):
                stream = attempts[number - 1]["container"].get("logStreamName")
            started = outcome.started if outcome else (detail or {}).get("startedAt")
            stopped = outcome.stopped if outcome else (detail or {}).get("stoppedAt")
            row = (
                args[0] if len(args) == 1 else args,  # the input as it was given
                outcome.value() if ok and outcome else None,
                status,
                describe_error(error) or never_starts(status, detail),
                error.traceback if isinstance(error, RemoteError) else None,
                number,
                started,
                stopped,
                (stopped - started) / 1000 if started and stopped else None,
                round(outcome.peak_kib / 1024, 1) if outcome else None,
                costs.get(i),
                stream,
                (detail or {}).get("jobId"),
            )
            for values, value in zip(columns.values(), row, strict=True):
                values.append(value)
        frame = pd.DataFrame(
            {
                name: pd.Series(pd.to_datetime(columns[name], unit="ms"))
                if dtype == "datetime"
                else pd.Series(columns[name], dtype=dtype)
                for name, dtype in FRAME_COLUMNS
            }
        )
        width = len(inputs[0]) if inputs else 0
        names = column_names(self.manifest.get("parameters"), width)
        for at, name in enumerate(names, 1):  # each parameter, to group by: after `input`
            frame.insert(at, name, pd.Series([args[at - 1] for args in inputs], dtype=object))
        return frame

    def files(self, index: int) -> InputFiles:
        """The files input ``index`` kept in its ``batch.output_dir()``: names and sizes,
        ``.read(name)``, ``.save(folder)``."""
        if not 0 <= index < self.size:
            raise IndexError(f"files({index!r}): map {self.name} has inputs 0 to {self.size - 1}")
        if index in self._covered:  # a retry_failed() run has this input now
            follow_up, j = self._covered[index]
            return follow_up.files(j)
        return InputFiles(self.backend.store, self.id, index)

    def cost(self, refresh: bool = True) -> RunCost:
        """What this map has cost so far, estimated: each attempt's max(60 s, its seconds)
        at its share of the price of where it would run on AWS (the same figures locally:
        what it would have cost there), with its estimate and budget. ``refresh=False``:
        from what this handle has read (a view's refresh, after a snapshot)."""
        if refresh:
            self._refresh()
        with self._lock:
            return run_cost(self)

    def logs(self, index: int, attempt: int | None = None, tail: int | None = None) -> list[str]:
        """The log lines input ``index`` printed in ``attempt`` (default: the attempt of its
        latest outcome), or the whole attempt's log if it had no outcome there; ``tail``: only
        the last that many.

        Lines are counted as the function writes them to sys.stdout/sys.stderr; output
        written straight to the file descriptors (subprocesses, C code) is not attributed.
        Reads stop at the input's last line; a tail of a log without an outcome is read
        from the end. When the stream cannot be read (no logs:GetLogEvents permission, no
        such stream) or has lost the input's lines (a retention period, CloudWatch's quotas),
        the first and last 50 lines the worker kept beside the result are shown instead,
        with a line saying how many between them were not kept.
        """
        return input_logs(self, index, attempt, tail)

    def cancel(
        self, reason: str = "Cancelled by MapJob.cancel()", indices: Iterable[int] | None = None
    ) -> None:
        """Stop every input that is not final: queued ones never start, running ones are
        terminated. ``indices``: only those inputs, one call per child that holds them (with
        ``chunksize`` > 1 a child's other inputs stop with it)."""
        self._snapshot = None  # what it shows is about to change
        if indices is None:
            self.backend.batch.terminate_job(jobId=self.job_id, reason=reason)
            for follow_up in self.follow_ups:
                follow_up.cancel(reason)
            return
        wanted = sorted(set(indices))
        bad = [i for i in wanted if not (isinstance(i, int) and 0 <= i < self.size)]
        if bad:
            raise IndexError(
                f"cancel(indices=...): {bad[0]!r} is not an input of map {self.name} "
                f"(0 to {self.size - 1})"
            )
        mine = [i for i in wanted if i not in self._covered]
        ids = self.chunk_job_ids
        for chunk in sorted({self._chunk_of(i) for i in mine}):
            self.backend.batch.terminate_job(jobId=ids[chunk], reason=reason)
        for follow_up in self.follow_ups:  # inputs a retry_failed() run holds now
            theirs = [j for i, (f, j) in self._covered.items() if f is follow_up and i in wanted]
            if theirs:
                follow_up.cancel(reason, theirs)

    def watch(self, callback: Callable[[Snapshot], None]) -> Callable[[], None]:
        """Call ``callback`` with each new snapshot (at most twice a second, from the backend's
        one watcher thread, shared by every handle and view of this run; the last one final).
        Returns the function that stops it."""
        return watcher(self.backend).watch(self, callback)

    def diagnose(self) -> Diagnosis:
        """Why this map is where it is, in plain words with the evidence: a dependency, a
        queue or compute environments not ready, a request too big, maxvCpus taken by
        other jobs, spot capacity, earlier timeouts or OOM kills (see batchbook why)."""
        return diagnose(self.backend, self.job_id)

    def why_waiting(self) -> str | None:
        """Why this map's waiting children cannot start, when Batch says they never will as
        they are (a requirement above what the queue's compute environments have); else None."""
        if self._parent.get("status") in FINAL:
            return None
        if len(self.chunks) == 1:
            reason = (
                self._parent.get("statusReason")
                if self._parent.get("status") == "RUNNABLE"
                else None
            )
        else:
            page = self.backend.batch.list_jobs(
                arrayJobId=self.job_id, jobStatus="RUNNABLE", maxResults=1
            )["jobSummaryList"]
            reason = page[0].get("statusReason") if page else None
        return reason if reason and reason.startswith(NEVER_STARTS) else None

    def delete(self) -> None:
        """Remove this map's function, inputs and results from the store (its retry_failed()
        runs' too); batch.jobs() no longer lists it and attach() cannot find it.

        Only once every input is final (cancel() it first to stop it early), and not while
        a map chained on it is kept: delete those first. Batch's own records of the job stay.
        """
        parent = self.manifest.get("parent")
        if parent:
            raise ClientError(
                f"map {self.name} is a retry_failed() run of run {parent['run']}: delete that "
                "map instead (its retries go with it)"
            )
        self._refresh()
        if not self.done:
            raise ClientError(
                f"map {self.name}: still running; wait() for it or cancel() it before delete()"
            )
        store = self.backend.store
        runs: list[MapJob] = [self, *self.follow_ups]
        ids = {run.id for run in runs}
        chained = [run["name"] for run in read_ledger(store)[0] if run.get("source") in ids]
        if chained:
            raise ClientError(
                f"map {self.name}: maps chained on it read its results ({', '.join(chained)}): "
                "delete them first"
            )
        now = int(time.time() * 1000)
        # first: a crash never leaves a listed run half-removed
        record_deleted(store, [run.id for run in runs], now)
        for run in runs:
            store.delete(f"runs/{run.id}/")
            run.deleted = True

    def retry_failed(self, **options: Any) -> MapJob:
        """Run just the failed inputs again as a new array; their results merge back into this
        map. ``options`` as for batch.map (``budget=`` holds the new array to its own)."""
        failed = sorted(self.exceptions())
        if not failed:
            raise JobFailed(f"map {self.name}: no failed inputs to retry")
        follow_up = MapJob(*resubmit(self, failed, **options))
        if options.get("budget") is not None:  # held to its own budget, as batch.map is
            Guard(
                follow_up, follow_up.cancel, None, follow_up.manifest["options"]["budget"]
            ).start()
        self.manifest.setdefault("followUps", []).append(follow_up.id)
        self._snapshot = None
        self.backend.store.put(run_key(self.id, "run.json"), to_json(self.manifest))
        self._adopt(follow_up)
        return follow_up

    # ------------------------------------------------------------------ display
    @property
    def run_id(self) -> str:
        """The run's id (``batch.attach(run_id)`` gives it back in any kernel)."""
        return self.id

    def __repr__(self) -> str:
        try:
            if self.reused:
                return f"{self.snapshot()!r} (reused run {self.id}: same code, inputs and options)"
            return repr(self.snapshot())
        except ResourceNotFound:
            return f"<MapJob {self.name} ({count(self.size, 'input')}, job {self.job_id}): deleted>"

    def _repr_html_(self) -> str:
        try:
            return self.snapshot()._repr_html_()
        except ResourceNotFound:
            return f"<div><b>MapJob {html.escape(self.name)}</b>: deleted</div>"

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        """In a kernel, the live job view, with the text and HTML summaries beside it."""
        if self.deleted:
            return {"text/plain": repr(self), "text/html": self._repr_html_()}
        return display.bundle("MapJob", self, repr(self), self._repr_html_(), **kwargs)
