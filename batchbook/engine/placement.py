"""Placement: which RUNNABLE jobs start now, and on which compute environment.

Queues by priority (higher first), each queue's compute environments in its order, jobs
FIFO; a job takes the first environment with room for it. A job no attached environment
could ever hold is marked with AWS's JOB_RESOURCE_REQUIREMENT reason; one that only more
spot capacity than is granted would start, with its INSUFFICIENT_INSTANCE_CAPACITY reason
(see SPOT_CAPACITY_TAG). Pure: it reads the
registry, the runnable queues and what is in use, and says what to start.
"""

from __future__ import annotations

from batchbook.engine.jobs import JobState
from batchbook.engine.registry import Registry
from batchbook.engine.resources import NONE, Resources, spot_granted
from batchbook.vocabulary import MISFIT_REASON, SPOT_SHORT_REASON

# After this many jobs in a row that did not fit, the rest of a queue waits for the next step.
MISSES_IN_A_ROW = 256


def place(
    registry: Registry,
    runnable: dict[str, dict[str, JobState]],
    used: dict[str, Resources],
) -> tuple[list[tuple[JobState, str]], list[tuple[JobState, str]]]:
    """(job, compute environment) pairs to start, and (job, reason) for jobs that never fit."""
    placed: list[tuple[JobState, str]] = []
    misfits: list[tuple[JobState, str]] = []
    in_use = dict(used)  # and what this step's placements take
    queues = sorted(
        (
            q
            for q in registry.queues.values()
            if q["state"] == "ENABLED" and runnable.get(q["jobQueueName"])
        ),
        key=lambda q: -q["priority"],
    )
    for queue in queues:
        attached = [n for n in registry.queue_environments(queue) if n in registry.ces]
        names = [n for n in attached if registry.ces[n]["state"] == "ENABLED"]
        if not names:
            continue
        capacity = {n: registry.capacity[n] for n in attached}
        granted = {n: spot_granted(registry.ces[n], capacity[n]) for n in names}
        free = {n: granted[n] - in_use.get(n, NONE) for n in names}
        if all(f.vcpu_milli <= 0 for f in free.values()):
            continue  # its compute environments are full: no need to look at its jobs
        before = len(placed)
        short = _spot_short(registry, names, granted)
        _place_queue(runnable[queue["jobQueueName"]], names, capacity, free, placed, misfits, short)
        for job, ce in placed[before:]:
            in_use[ce] = in_use.get(ce, NONE) + job.spec.resources
    return placed, misfits


def _spot_short(
    registry: Registry, names: list[str], granted: dict[str, Resources]
) -> tuple[dict[str, Resources], str] | None:
    """When spot grants less than these environments declare: what it grants, and AWS's
    reason for a job that only more capacity would start."""
    if all(granted[n] == registry.capacity[n] for n in names):
        return None
    types = sorted(
        {
            t
            for n in names
            for t in (registry.ces[n].get("computeResources") or {}).get("instanceTypes")
            or ["optimal"]
        }
    )
    return granted, SPOT_SHORT_REASON.format(types=", ".join(types))


def _place_queue(
    jobs: dict[str, JobState],
    names: list[str],
    capacity: dict[str, Resources],
    free: dict[str, Resources],
    placed: list[tuple[JobState, str]],
    misfits: list[tuple[JobState, str]],
    short: tuple[dict[str, Resources], str] | None = None,
) -> None:
    largest = max(capacity.values(), key=lambda r: (r.vcpu_milli, r.memory_mib))
    misses: set[Resources] = set()
    misses_in_a_row = 0
    for job in jobs.values():
        need = job.spec.resources
        if need in misses:
            misses_in_a_row += 1
        else:
            target = next((n for n in names if need.fits_in(free[n])), None)
            if target is not None:
                free[target] = free[target] - need
                placed.append((job, target))
                misses_in_a_row = 0
                if all(f.vcpu_milli <= 0 for f in free.values()):
                    return
                continue
            misses.add(need)
            misses_in_a_row += 1
            if not any(need.fits_in(c) for c in capacity.values()):
                misfits.append(
                    (job, MISFIT_REASON.format(need=need.describe(), have=largest.describe()))
                )
            elif short is not None and not any(need.fits_in(g) for g in short[0].values()):
                misfits.append((job, short[1]))  # it fits, but spot does not grant that much
        if misses_in_a_row > MISSES_IN_A_ROW:
            return
