"""The log lines of one input of a map: read from its attempt's log stream (CloudWatch
Logs' GetLogEvents, on AWS and locally alike), or, when the stream cannot be read or has
lost them (no permission, a retention period, a quota), what the worker kept of them
beside the input's result (see keptoutput)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from batchbook.errors import BatchbookError, ClientError
from batchbook.functions.keptoutput import LINE_CHARS
from batchbook.functions.log_lines import log_lines
from batchbook.wording import count

if TYPE_CHECKING:
    from batchbook.functions.runstate import RunState


def input_logs(job: RunState, index: int, attempt: int | None, tail: int | None) -> list[str]:
    """See MapJob.logs."""
    if not 0 <= index < job.size:
        raise IndexError(
            f"logs({index!r}): map {job.name} has {count(job.size, 'input')}, "
            f"so the index is 0 to {job.size - 1}"
        )
    if tail is not None and (not isinstance(tail, int) or tail < 0):
        raise ClientError(f"tail: {tail!r:.40} is not a whole number >= 0")
    job._refresh(details=True)
    if index in job._covered:  # a retry_failed() run has this input now
        follow_up, j = job._covered[index]
        return input_logs(follow_up, j, attempt, tail)
    _status, outcome, detail = job._input_state(index)
    attempts = (detail or {}).get("attempts", [])
    number = attempt or (outcome.attempt if outcome else len(attempts))
    if attempt is not None and not 1 <= attempt <= len(attempts):
        raise IndexError(
            f"logs({index}, attempt={attempt}): input {index} has had "
            f"{count(len(attempts), 'finished attempt')}"
        )
    if not 0 < number <= len(attempts):
        return []
    if outcome is not None and outcome.attempt != number:
        latest, outcome = outcome, job._outcome_in(index, number)
        if outcome is None and latest.ok and latest.attempt < number:
            return []  # done in an earlier attempt, so this one skipped it
    stream = attempts[number - 1]["container"]["logStreamName"]
    backend = job.backend
    if outcome is None:  # no result there: the attempt's whole log (or its tail)
        return log_lines(backend.logs, stream, 0, None, tail)
    first, end = outcome.log_start, outcome.log_end
    if tail is not None:
        first = max(first, end - tail)
    kept = outcome.kept()
    try:
        lines = log_lines(backend.logs, stream, first, end, None, backend.log_token)
    except BatchbookError:  # no permission, no such stream, no route: the backend's errors
        if kept is None:
            raise
        return kept.lines(tail)
    if (
        kept is not None
        and (
            len(lines) < end - first  # the stream has lost some of them (a cap, a quota)
            # or its head (a retention period): what is there now is other inputs' lines
            or (tail is None and lines and kept.head and lines[0][:LINE_CHARS] != kept.head[0])
        )
    ):
        return kept.lines(tail)
    return lines
