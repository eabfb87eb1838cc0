"""What a map's handle knows of its run, and how it learns it: the manifest, each input's
latest outcome (read from the store's result objects), the DescribeJobs details of the array
parent and its chunks, and the retry_failed() runs that took inputs over. MapJob builds its
views, waiting and results on it."""

from __future__ import annotations

import json
import operator
import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Self

from batchbook.errors import ClientError, ResourceNotFound
from batchbook.functions.ledger import read_ledger, settle_pending
from batchbook.functions.options import chunk_bounds_of
from batchbook.functions.payload import (
    Outcome,
    gc_paused,
    read_blocks,
    results_prefix,
    run_key,
)
from batchbook.functions.snapshot import InputRow, Snapshot
from batchbook.vocabulary import FINAL, MAX_DESCRIBE_JOBS

if TYPE_CHECKING:
    from batchbook.functions.backend import Backend

_INPUT = operator.itemgetter(0)  # Outcome.input
LIST_WHOLE = 100  # runs of at most this many chunks list their results in one go


class RunState:
    """What a handle knows of its run: the manifest, the outcomes read from the store, the
    DescribeJobs details of its parent and chunks, and the retry_failed() runs over it."""

    def __init__(self, backend: Backend, manifest: dict[str, Any]):
        self.backend = backend
        self.manifest = manifest
        self.id: str = manifest["id"]
        self.name: str = manifest["name"]
        self.job_id: str = manifest["jobId"]
        self.size: int = manifest["n"]
        self.chunks = chunk_bounds_of(manifest["n"], manifest["chunksize"])
        self._outcomes: dict[int, Outcome] = {}
        self._read: set[str] = set()  # results objects read (each is written once, whole)
        self._ok_in = [0] * len(self.chunks)  # chunk -> its inputs with a value
        self._complete: set[int] = set()  # chunks that will write no more results
        self._rows: dict[int, InputRow] = {}  # the table rows of inputs with a value
        self.earlier: list[Outcome] = []  # outcomes of attempts an input had before its latest
        # chunk -> its DescribeJobs detail (final ones are kept, not asked again)
        self._details: dict[int, dict[str, Any]] = {}
        self._parent: dict[str, Any] = {}
        self._snapshot: Snapshot | None = None  # the latest, reused for SNAPSHOT_SECONDS
        self._chunk_status: dict[int, str] = {}  # what the latest snapshot learned per chunk
        self._version = 0
        self._lock = threading.RLock()
        self.deleted = False  # by delete(): its stored data is gone
        self.follow_ups: list[Self] = []  # retry_failed() runs, merged into this one's results
        self._covered: dict[int, tuple[Self, int]] = {}  # input -> (follow-up, its index)
        for run_id in manifest.get("followUps", []):
            self._adopt(type(self).load(backend, run_id))

    @classmethod
    def load(cls, backend: Backend, run_id: str) -> Self:
        try:
            manifest = json.loads(bytes(backend.store.get(run_key(run_id, "run.json"))))
        except FileNotFoundError:
            deleted = run_id in read_ledger(backend.store)[1]
            raise ResourceNotFound(
                f"run {run_id}: {'it was deleted' if deleted else 'not in the store'}"
            ) from None
        if "jobId" not in manifest:  # written before the job existed: the ledger has its id
            entries = [run for run in read_ledger(backend.store)[0] if run["id"] == run_id]
            settle_pending(backend, entries)  # its client may have stopped before it knew it
            if not entries or entries[0]["jobId"] is None:
                raise ClientError(
                    f"run {run_id}: it was never submitted (its client stopped before "
                    "SubmitJob answered, and Batch has no job tagged with it)"
                )
            manifest["jobId"] = entries[0]["jobId"]
        return cls(backend, manifest)

    # ------------------------------------------------------------------ state
    @property
    def chunk_job_ids(self) -> list[str]:
        return [self.chunk_job_id(i) for i in range(len(self.chunks))]

    def chunk_job_id(self, chunk: int) -> str:
        """The job that runs ``chunk``: the array's child, or the job itself if it has one."""
        return self.job_id if len(self.chunks) == 1 else f"{self.job_id}:{chunk}"

    def _chunk_of(self, index: int) -> int:
        return index // self.manifest["chunksize"]

    def _read_outcomes(self, final: Iterable[int] = ()) -> None:
        """Read the result objects written since the last call; ``final``: chunks Batch said
        were final before this read (their results are all written: none is listed again)."""
        final = set(final)
        with gc_paused():  # tens of thousands of small tuples: one collection after, not dozens
            self._read_new_blocks()
        self._complete |= final

    def _read_new_blocks(self) -> None:
        store, known = self.backend.store, self._outcomes
        prefix = results_prefix(self.id)
        if len(self.chunks) <= LIST_WHOLE:  # one listing is the cheapest
            keys = [key for key, _ in store.list(prefix)]
        else:  # only the chunks that may have written more: a listing each
            keys = []
            for folder in store.folders(prefix):
                if int(folder) not in self._complete:
                    keys += [key for key, _ in store.list(f"{prefix}{folder}/")]
        size = self.manifest["chunksize"]
        for key in keys:
            if key in self._read:
                continue
            outcomes = read_blocks(store.get(key))[0]
            self._read.add(key)
            if known.keys().isdisjoint(map(_INPUT, outcomes)):  # the usual case: all new
                known.update(zip(map(_INPUT, outcomes), outcomes, strict=True))
                for o in outcomes:
                    self._ok_in[o.input // size] += o.ok
            else:
                for o in outcomes:
                    old = known.get(o.input)
                    if old is None or (o.attempt >= old.attempt and not old.ok):  # a value stays
                        known[o.input] = o
                        self._ok_in[o.input // size] += o.ok - (old is not None and old.ok)
                        if old is not None and old.attempt != o.attempt:
                            self.earlier.append(old)  # an attempt the input had before
                    elif old.attempt != o.attempt:
                        self.earlier.append(o)
        for chunk in {int(key[len(prefix) :].split("/", 1)[0]) for key in keys}:
            start, end = self.chunks[chunk]
            if self._ok_in[chunk] == end - start:  # every input has its value
                self._complete.add(chunk)

    def _refresh(self, details: bool = False) -> None:
        """Read new results; describe the parent (and the chunks that are not final yet)."""
        self._check_stored()
        with self._lock:
            # Batch first, then the results: a chunk's blocks are on disk before its process
            # exits, so a chunk seen final here has all its results read below.
            (self._parent,) = self.backend.describe([self.job_id])
            if details or len(self.chunks) == 1:
                ids = self.chunk_job_ids
                todo = [
                    i
                    for i in range(len(ids))
                    if self._details.get(i, {}).get("status") not in FINAL
                ]
                if len(self.chunks) == 1:
                    self._details[0] = self._parent
                else:
                    for detail in self.backend.describe([ids[i] for i in todo]):
                        self._details[detail["arrayProperties"]["index"]] = detail
            self._read_outcomes(self._final_chunks())
            for follow_up in self.follow_ups:
                follow_up._refresh(details)

    def _final_chunks(self) -> list[int]:
        """The chunks DescribeJobs said are final."""
        return [i for i, d in self._details.items() if d.get("status") in FINAL]

    def _adopt(self, follow_up: Self) -> None:
        self.follow_ups.append(follow_up)
        for j, i in enumerate(follow_up.manifest["parent"]["indices"]):
            self._covered[i] = (follow_up, j)

    def _input_state(self, index: int) -> tuple[str, Outcome | None, dict[str, Any] | None]:
        """(status, outcome, chunk detail) of one input, a retry_failed() run taking precedence."""
        if index in self._covered:
            follow_up, j = self._covered[index]
            return follow_up._input_state(j)
        outcome = self._outcomes.get(index)
        detail = self._details.get(self._chunk_of(index))
        if outcome is not None and outcome.ok:
            return "SUCCEEDED", outcome, detail
        status = detail["status"] if detail else self._parent_status_for_chunks()
        if status == "SUCCEEDED":  # a finished chunk without this input's result: say so
            status = "FAILED"
        return status, outcome, detail

    def _parent_status_for_chunks(self) -> str:
        status = self._parent.get("status", "SUBMITTED")
        return "PENDING" if status == "SUCCEEDED" and len(self.chunks) > 1 else status

    @property
    def done(self) -> bool:
        """True once every chunk (and every retry_failed() run) is final."""
        return self._parent.get("status") in FINAL and all(f.done for f in self.follow_ups)

    def _describe_unfinished_chunks(self) -> int:
        """Describe the chunks not known to be final (100 a call); the calls it took."""
        return self._describe_chunks(
            [
                i
                for i in range(len(self.chunks))
                if self._details.get(i, {}).get("status") not in FINAL
            ]
        )

    def _describe_chunks(self, chunks: list[int]) -> int:
        """DescribeJobs of these chunks' children (100 a call), kept; the calls it took."""
        if len(self.chunks) == 1:
            self._details[0] = self._parent
            return 0
        ids = self.chunk_job_ids
        for detail in self.backend.describe([ids[i] for i in chunks]):
            self._details[detail["arrayProperties"]["index"]] = detail
        return -(-len(chunks) // MAX_DESCRIBE_JOBS)

    def _outcome_in(self, index: int, attempt: int) -> Outcome | None:
        """Input ``index``'s outcome in ``attempt`` (the handle keeps only the latest)."""
        store = self.backend.store
        prefix = f"{results_prefix(self.id, self._chunk_of(index))}{attempt:02d}-"
        for key, _ in store.list(prefix):
            for o in read_blocks(store.get(key))[0]:
                if o.input == index:
                    return o
        return None

    def _check_stored(self) -> None:
        """ResourceNotFound once the run was deleted (through this handle or any other)."""
        if not self.deleted and not self.backend.store.list(run_key(self.id, "run.json")):
            self.deleted = True
        if self.deleted:
            raise ResourceNotFound(f"map {self.name} (run {self.id}) was deleted")
