"""The local AWS Batch engine as a pure state machine.

Requests (the Batch operations) and events (an attempt started, exited or was
lost; time passed) go in; :meth:`Engine.step` hands back the actions the
driver must carry out (start or stop an attempt). Time only comes from the
injected clock, so tests drive everything with a fake one. Nothing here does
I/O: the runtime persists what :meth:`Engine.take_changes` returns.
"""

from __future__ import annotations

import heapq
import uuid
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from batchbook.engine import schedules, spot, views
from batchbook.engine.actions import Action, StartAttempt, StopAttempt, WriteNotice
from batchbook.engine.changes import Changes, Clock
from batchbook.engine.jobs import JobSpec, JobState, Task, job_to_stop
from batchbook.engine.operations import ObjectOperations
from batchbook.engine.placement import place
from batchbook.engine.recovery import rebuild
from batchbook.engine.registry import Host, Registry
from batchbook.engine.resources import NONE, Resources
from batchbook.engine.statelimits import heads_to_stop, stop_reason
from batchbook.engine.submitjob import parse_submit_job
from batchbook.engine.transitions import check_invariants, check_transition
from batchbook.validation import validate_request
from batchbook.vocabulary import (
    ACTIVE,
    CANCELLABLE,
    CHILD_FAILED,
    DEPENDENCY_FAILED,
    FINAL,
    MAIN_NODE_EXITED,
    STATUSES,
    TIMEOUT_REASON,
    log_stream_name,
    name_of,
)


@dataclass(frozen=True)
class EngineConfig:
    min_timeout_seconds: int = 60  # AWS's floor; the local runtime may lower it for tests
    min_state_limit_seconds: int = 600  # of jobStateTimeLimitActions' maxTimeSeconds, likewise
    spot_notice_dir: str = "/tmp"  # where a spot rehearsal's notices go (the runtime's own)


class Engine(ObjectOperations):
    def __init__(self, clock: Clock, host: Host, config: EngineConfig | None = None):
        self.clock = clock
        self.host = host
        self.config = config or EngineConfig()
        self.min_timeout_seconds = self.config.min_timeout_seconds
        self.registry = Registry(host, self._object_changed, self.config.min_state_limit_seconds)
        self.schedules = schedules.Schedules(clock, self.registry)
        self.jobs: dict[str, JobState] = {}
        self._runnable: dict[str, dict[str, JobState]] = {}  # queue name -> FIFO of RUNNABLE jobs
        self._submitted: deque[JobState] = deque()
        self._tasks: dict[str, JobState] = {}  # task id -> job with that attempt in flight
        self._used: dict[str, Resources] = {}  # compute environment -> what is reserved
        # (epoch ms, task id, what): an attempt's timeout, its spot notice and its end
        self._deadlines: list[tuple[int, str, str]] = []
        self._reclaims: dict[str, spot.Interruption] = {}  # task id -> its spot interruption
        self._limit_timers: list[tuple[int, str]] = []  # (epoch ms, job id) state time limits
        self._actions: list[Action] = []
        self._seq = 0
        self._changes = Changes()
        self._changed_jobs: dict[str, JobState] = {}

    # ------------------------------------------------------------------ plumbing
    def _object_changed(self, kind: str, key: str, data: dict[str, Any] | None) -> None:
        self._changes.objects.append((kind, key, data))

    def _touch(self, job: JobState) -> None:
        self._changed_jobs[job.id] = job

    def take_changes(self) -> Changes:
        changes = self._changes
        changes.jobs = list(self._changed_jobs.values())
        self._changes = Changes()
        self._changed_jobs = {}
        return changes

    @property
    def region(self) -> str:
        return self.registry.region

    @region.setter
    def region(self, region: str) -> None:
        """ARNs made from now on carry ``region`` (the service sets it from each request)."""
        self.registry.region = region

    def job_arn(self, job_id: str) -> str:
        return self.registry.arn("job", job_id)

    # ------------------------------------------------------------- job requests
    def submit_job(self, req: dict[str, Any]) -> dict[str, Any]:
        spec, deps = parse_submit_job(
            req, self.registry, self.jobs, self.config.min_timeout_seconds
        )
        array_size = spec.array_size
        now = self.clock()
        job = self._new_job(str(uuid.uuid4()), spec, now)
        job.tags = dict(req.get("tags") or {})
        for dep in deps.plain:
            self._wait_on(job, dep)
        if spec.nodes is not None:
            job.released = not job.waiting_on
            for node in range(spec.nodes.num_nodes):
                member = self._new_job(f"{job.id}#{node}", spec.for_node(node), now, parent=job)
                member.node = node
                job.children.append(member)
        if array_size is not None:
            job.released = not job.waiting_on
            job.summary = dict.fromkeys(STATUSES, 0)
            job.summary["SUBMITTED"] = array_size
            for i in range(array_size):
                child = self._new_job(f"{job.id}:{i}", spec, now, index=i, parent=job)
                job.children.append(child)
                if deps.n_to_n is not None:
                    self._wait_on(child, deps.n_to_n.children[i])
                if deps.sequential and i:
                    self._wait_on(child, job.children[i - 1])
        self._submitted.append(job)
        return {"jobArn": self.job_arn(job.id), "jobName": spec.name, "jobId": job.id}

    def _new_job(
        self,
        job_id: str,
        spec: JobSpec,
        now: int,
        index: int | None = None,
        parent: JobState | None = None,
    ) -> JobState:
        self._seq += 1
        job = JobState(
            id=job_id, spec=spec, created_at=now, seq=self._seq, index=index, parent=parent
        )
        self.jobs[job_id] = job
        self._record(job, now)
        return job

    def _wait_on(self, job: JobState, dep: JobState) -> None:
        if dep.status == "SUCCEEDED":
            return
        job.waiting_on.add(dep.id)
        dep.dependents.append(job.id)
        self._touch(dep)

    def cancel_job(self, req: dict[str, Any]) -> dict[str, Any]:
        validate_request("CancelJob", req)
        job = self.jobs.get(job_to_stop(req))
        if job is not None:
            targets = job.children if job.is_parent else [job]
            main = job.main_node
            if main is not None and main.status not in CANCELLABLE:
                targets = []  # a multi-node job is cancellable while its main node is
            for target in sorted(targets, key=lambda t: t.is_main_node):
                if target.status in CANCELLABLE:
                    target.is_cancelled = True
                    self._fail(target, req["reason"])
        return {}

    def terminate_job(self, req: dict[str, Any]) -> dict[str, Any]:
        validate_request("TerminateJob", req)
        job = self.jobs.get(job_to_stop(req))
        if job is not None:
            self._terminate(job, req["reason"])
        return {}

    def _terminate(self, job: JobState, reason: str) -> None:
        targets = job.children if job.is_parent else [job]
        for target in sorted(targets, key=lambda t: t.is_main_node):  # the main node last
            if target.final:
                continue
            target.is_terminated = True
            self._touch(target)
            if target.status in CANCELLABLE:
                self._fail(target, reason)
            else:
                self._stop(target, reason, "terminate")

    def _stop(self, job: JobState, reason: str, kind: str, grace_ms: int | None = None) -> None:
        task = job.task
        if task is None or task.stop_kind is not None:
            return
        task.stop_reason, task.stop_kind = reason, kind
        self._touch(job)
        if task.pid is not None:
            self._actions.append(StopAttempt(task.task_id, task.pid, reason, grace_ms))
        # else: stopped as soon as it reports started

    # ------------------------------------------------------------------ events
    def attempt_started(
        self, task_id: str, pid: int, pid_start: int | None = None, at: int | None = None
    ) -> None:
        """The attempt's process started (``at``: when, epoch ms, if the launcher knows best)."""
        job = self._tasks.get(task_id)
        if job is None or job.task is None:
            return
        task = job.task
        now = min(at, self.clock()) if at is not None else self.clock()
        task.pid, task.pid_start, task.started_at = pid, pid_start, now
        job.started_at = now
        self._set_status(job, "RUNNING")
        if job.is_main_node and job.parent is not None:
            for node in job.parent.children:
                self._maybe_runnable(node)
        if task.stop_kind is not None:
            self._actions.append(StopAttempt(task_id, pid, task.stop_reason or ""))
        else:
            self._arm(job)

    def _arm(self, job: JobState) -> None:
        """The timers of an attempt that started: its timeout, a spot rehearsal's notice."""
        task = job.task
        assert task is not None and task.started_at is not None
        if job.spec.timeout_seconds:
            due = task.started_at + job.spec.timeout_seconds * 1000
            heapq.heappush(self._deadlines, (due, task.task_id, "timeout"))
        reclaim = spot.for_attempt(self.registry.ces.get(job.ce or ""), job)
        if reclaim is not None:  # drawn once: a change of the tags meanwhile does not move it
            self._reclaims[task.task_id] = reclaim
            heapq.heappush(
                self._deadlines, (task.started_at + reclaim.after_ms, task.task_id, "notice")
            )
            heapq.heappush(
                self._deadlines, (task.started_at + reclaim.term_after_ms, task.task_id, "spot")
            )

    def attempt_exited(
        self,
        task_id: str,
        exit_code: int | None,
        *,
        oom: bool = False,
        reason: str | None = None,
        peak_memory_kib: int | None = None,
        cpu_seconds: float | None = None,
    ) -> None:
        """An attempt ended: ``exit_code`` None means it was lost with ``reason``."""
        job = self._tasks.pop(task_id, None)
        self._reclaims.pop(task_id, None)
        if job is None or job.task is None:
            return
        task, job.task = job.task, None
        now = self.clock()
        self._used[job.ce or ""] = self._used.get(job.ce or "", NONE) - job.spec.resources
        attempt = views.attempt_detail(
            self.registry, job, task, now, exit_code, oom, reason, peak_memory_kib, cpu_seconds
        )
        status_reason = attempt["statusReason"]
        container_reason = attempt["container"].get("reason")
        exit_code = attempt["container"].get("exitCode")
        job.attempts.append(attempt)
        if task.stop_kind == "restart":  # a child node, for its job's next attempt
            main = job.main_node
            if main is not None and main.final:  # ...which will not come: it is over
                self._fail(job, MAIN_NODE_EXITED)
            else:
                self._set_status(job, "PENDING", status_reason)
                self._maybe_runnable(job)
        elif exit_code == 0 and task.stop_kind is None and not oom:
            self._set_status(job, "SUCCEEDED", status_reason)
        elif self._retries_after(job, task) and job.spec.retry.should_retry(
            task.number, status_reason, container_reason, exit_code
        ):
            job.status_reason = status_reason
            self._set_status(job, "RUNNABLE", status_reason)
            if job.is_main_node:
                self._restart_child_nodes(job, status_reason)
        else:
            self._fail(job, status_reason)

    @staticmethod
    def _retries_after(job: JobState, task: Task) -> bool:
        """Whether an ended attempt may be retried at all: one the worker ended, or one whose
        spot instance went (not terminated meanwhile: a terminated job is never retried)."""
        return task.stop_kind is None or (task.stop_kind == "spot" and not job.is_terminated)

    def attempt_lost(self, task_id: str, reason: str) -> None:
        self.attempt_exited(task_id, None, reason=reason)

    def attempt_requeued(self, task_id: str) -> None:
        """A graceful stop interrupted the attempt: it goes back to the queue as if it had
        never started (no attempt recorded, none spent; its next run has its number)."""
        job = self._tasks.get(task_id)
        if job is None or job.task is None:
            return
        if job.task.stop_kind is not None:  # being terminated or timed out: it ends so
            self.attempt_exited(task_id, None, reason=job.task.stop_reason)
            return
        del self._tasks[task_id]
        job.task = None
        self._used[job.ce or ""] = self._used.get(job.ce or "", NONE) - job.spec.resources
        child = job.node is not None and not job.is_main_node  # it waits for its main node
        self._set_status(job, "PENDING" if child else "RUNNABLE")

    def active_tasks(self) -> list[tuple[str, Task]]:
        return [(job.id, job.task) for job in self._tasks.values() if job.task is not None]

    # -------------------------------------------------------------- scheduling
    def next_deadline(self) -> int | None:
        due = [timers[0][0] for timers in (self._deadlines, self._limit_timers) if timers]
        firing = self.schedules.next_at()  # the next schedule's
        return min(due if firing is None else [*due, firing], default=None)

    def step(self) -> list[Action]:
        """Advance: fire due timeouts and schedules, admit submitted jobs, place runnable ones."""
        now = self.clock()
        self.schedules.fire_due(now, self.submit_job)
        while self._deadlines and self._deadlines[0][0] <= now:
            _, task_id, what = heapq.heappop(self._deadlines)
            job = self._tasks.get(task_id)
            if job is None or job.task is None or job.task.task_id != task_id:
                continue
            reclaim = self._reclaims.get(task_id)
            if what == "timeout":
                self._stop(job, TIMEOUT_REASON, "timeout")
            elif reclaim is not None and what == "notice":
                path = spot.notice_path(self.config.spot_notice_dir, task_id)
                self._actions.append(
                    WriteNotice(task_id, path, reclaim.notice(job.task.started_at or now))
                )
            elif reclaim is not None:
                self._stop(job, reclaim.reason, "spot", reclaim.grace_ms)
        while self._limit_timers and self._limit_timers[0][0] <= now:
            heapq.heappop(self._limit_timers)  # they only wake the loop: the check is below
        while self._submitted:
            self._admit(self._submitted.popleft())
        self._place()
        while self._apply_state_limits(now):
            self._place()
        actions, self._actions = self._actions, []
        # an attempt lost meanwhile (a restart's recovery) is not signalled: its pid is stale
        return [a for a in actions if not isinstance(a, StopAttempt) or a.task_id in self._tasks]

    def _apply_state_limits(self, now: int) -> bool:
        """Stop the heads their queues' state time limits say to; True if one was."""
        reg = self.registry
        stops, timers, stale = heads_to_stop(self._runnable, reg.queues, now, reg.fits)
        for job in stale:  # blocked no more: its environments grew since it was marked
            job.status_reason = None
            self._touch(job)
        for timer in timers:
            if timer not in self._limit_timers:
                heapq.heappush(self._limit_timers, timer)
        for job, action in stops:
            if action["action"] == "CANCEL":
                job.is_cancelled = True
                self._fail(job, stop_reason(action))
            else:
                self._terminate(job, stop_reason(action))
        return bool(stops)

    def _admit(self, job: JobState) -> None:
        if job.final:
            return
        for member in [job, *job.children]:
            if member.status == "SUBMITTED":
                self._set_status(member, "PENDING")
        # A dependency that had already failed at submission dooms its dependents now.
        if job.is_parent and self._depends_on_failure(job):
            job.status_reason = DEPENDENCY_FAILED
            members = job.children
        else:
            members = [
                m for m in [job, *job.children] if not m.is_parent and self._depends_on_failure(m)
            ]
        doomed: deque[JobState] = deque()
        for member in members:
            if not member.final:
                self._finish_quietly(member, "FAILED", DEPENDENCY_FAILED, doomed)
        self._settle(doomed)
        if job.is_parent:
            if job.released and not job.final:
                self._release_children(job)
        else:
            self._maybe_runnable(job)

    def _depends_on_failure(self, job: JobState) -> bool:
        return any(self.jobs[d].status == "FAILED" for d in job.waiting_on)

    def _maybe_runnable(self, job: JobState) -> None:
        if (
            job.status == "PENDING"
            and not job.waiting_on
            and (job.parent is None or job.parent.released)
            and (job.node is None or job.is_main_node or self._main_runs(job))
        ):
            self._set_status(job, "RUNNABLE")

    @staticmethod
    def _main_runs(node: JobState) -> bool:
        """A child node starts once its job's main node runs."""
        main = node.main_node
        return main is not None and main.status == "RUNNING"

    def _restart_child_nodes(self, main: JobState, reason: str) -> None:
        """The main node is retried: every child node waits for its next run, stopping first."""
        assert main.parent is not None
        for node in main.parent.children:
            if node is main:
                continue
            if node.status in ACTIVE:
                self._stop(node, reason, "restart")
            elif node.status != "PENDING":
                self._set_status(node, "PENDING", reason)

    def _stop_child_nodes(self, main: JobState, todo: deque[JobState]) -> None:
        """The main node exited: the job is finished and its other nodes are stopped."""
        assert main.parent is not None
        for node in main.parent.children:
            if node is main or node.final:
                continue
            if node.status in CANCELLABLE:
                self._finish_quietly(node, "FAILED", MAIN_NODE_EXITED, todo)
            elif node.task is not None and node.task.stop_kind == "restart":
                node.task.stop_kind, node.task.stop_reason = "terminate", MAIN_NODE_EXITED
            else:
                self._stop(node, MAIN_NODE_EXITED, "terminate")

    def _release_children(self, parent: JobState) -> None:
        parent.released = True
        self._touch(parent)
        for child in parent.children:
            self._maybe_runnable(child)

    def _place(self) -> None:
        placed, misfits = place(self.registry, self._runnable, self._used)
        for job, reason in misfits:
            if job.status_reason != reason:
                job.status_reason = reason
                self._touch(job)
        for job, ce in placed:
            self._start(job, ce)

    def _start(self, job: JobState, ce: str) -> None:
        self._used[ce] = self._used.get(ce, NONE) + job.spec.resources
        job.ce = ce
        job.status_reason = None
        task_id = uuid.uuid4().hex
        jobdef = self.registry.jobdefs[name_of(job.spec.job_definition_arn)]
        task = Task(
            task_id, len(job.attempts) + 1, log_stream_name(jobdef["jobDefinitionName"], task_id)
        )
        job.task = task
        self._tasks[task_id] = job
        self._set_status(job, "STARTING")
        env = job.environment(jobdef, task.number)
        if (
            spot.for_attempt(self.registry.ces.get(job.ce or ""), job) is not None
        ):  # where the instance-action notice will be
            env[spot.NOTICE_ENV] = spot.notice_path(self.config.spot_notice_dir, task_id)
        self._actions.append(
            StartAttempt(
                task_id=task_id,
                job_id=job.id,
                attempt=task.number,
                argv=tuple(job.command(jobdef)),
                env=env,
                memory_mib=job.spec.resources.memory_mib,
                vcpu_milli=job.spec.resources.vcpu_milli,
                log_stream=task.log_stream,
                secrets=job.secrets(jobdef),
            )
        )

    # ------------------------------------------------------- status transitions
    def _record(self, job: JobState, now: int) -> None:
        self._touch(job)
        self._changes.events.append((now, job.id, job.status, job.status_reason))

    def _set_status(self, job: JobState, status: str, reason: str | None = None) -> None:
        if job.status == status:
            return
        self._transition(job, status, reason)
        if status in FINAL:
            self._settle(deque([job]))

    def _transition(self, job: JobState, status: str, reason: str | None) -> None:
        """The bookkeeping of every status change: queues, reason, times, event, parent summary."""
        check_transition(job, status)
        old, now = job.status, self.clock()
        if job.is_parent:
            pass  # a parent runs nothing: it is never in a runnable queue
        elif old == "RUNNABLE":
            self._runnable[job.spec.queue].pop(job.id, None)
        elif status == "RUNNABLE":
            self._runnable.setdefault(job.spec.queue, {})[job.id] = job
            job.runnable_at = now
        job.status = status
        if reason is not None:
            job.status_reason = reason
        if status in FINAL:
            job.stopped_at = now
        self._record(job, now)
        parent = job.parent
        if parent is None:
            return
        if parent.is_array_parent:
            parent.summary[old] -= 1
            parent.summary[status] += 1
            if parent.status == "SUBMITTED":
                self._transition(parent, "PENDING", None)
        elif job.is_main_node and parent.status != status:  # a multi-node job is its main node
            parent.started_at = job.started_at
            self._transition(parent, status, job.status_reason)

    def _fail(self, job: JobState, reason: str) -> None:
        self._set_status(job, "FAILED", reason)

    def _settle(self, todo: deque[JobState]) -> None:
        """Propagate final statuses to dependents and array parents, without recursion."""
        while todo:
            done = todo.popleft()
            for dep_id in done.dependents:
                waiter = self.jobs[dep_id]
                if waiter.final:
                    continue
                if done.status == "SUCCEEDED":
                    waiter.waiting_on.discard(done.id)
                    self._touch(waiter)
                    if not waiter.waiting_on and waiter.is_parent and not waiter.released:
                        if waiter.status != "SUBMITTED":
                            self._release_children(waiter)
                        else:
                            waiter.released = True
                    else:
                        self._maybe_runnable(waiter)
                elif waiter.is_parent:
                    waiter.status_reason = DEPENDENCY_FAILED
                    for child in waiter.children:
                        if child.status in CANCELLABLE:
                            self._finish_quietly(child, "FAILED", DEPENDENCY_FAILED, todo)
                elif waiter.status in CANCELLABLE:
                    self._finish_quietly(waiter, "FAILED", DEPENDENCY_FAILED, todo)
            parent = done.parent
            if done.is_main_node and parent is not None:
                todo.append(parent)
                self._stop_child_nodes(done, todo)
                continue
            if parent is None or parent.final or not parent.is_array_parent:
                continue
            if parent.summary["SUCCEEDED"] + parent.summary["FAILED"] == len(parent.children):
                if parent.summary["FAILED"]:
                    self._finish_quietly(
                        parent, "FAILED", parent.status_reason or CHILD_FAILED, todo
                    )
                else:
                    self._finish_quietly(parent, "SUCCEEDED", None, todo)

    def _finish_quietly(
        self, job: JobState, status: str, reason: str | None, todo: deque[JobState]
    ) -> None:
        """Set a final status and queue the job for settling (instead of recursing)."""
        self._transition(job, status, reason)
        todo.append(job)

    # ------------------------------------------------------------- describing
    def describe_jobs(self, req: dict[str, Any]) -> dict[str, Any]:
        return views.describe_jobs(req, self.jobs, self.registry, self.clock())

    def list_jobs(self, req: dict[str, Any] | None = None) -> dict[str, Any]:
        req = req or {}
        validate_request("ListJobs", req)
        return views.list_jobs(req, self.jobs, self.registry)

    def why_not_running(self, job_id: str) -> str:
        """A sentence on why a job is where it is (for "stuck in RUNNABLE" questions)."""
        job = self.jobs.get(job_id)
        if job is None:
            return f"job {job_id} does not exist"
        return views.why_not_running(job, self.registry, self._used)

    def check_invariants(self) -> None:
        """ServerError unless the state holds together (see transitions.check_invariants)."""
        check_invariants(self.jobs, self._tasks, self._runnable, self._used)

    # ---------------------------------------------------------------- loading
    def load(
        self,
        objects: Iterable[tuple[str, dict[str, Any]]],
        jobs: Iterable[tuple[str, dict[str, Any]]],
    ) -> None:
        """Rebuild the state from persisted records (parents before their children)."""
        for kind, data in objects:
            (self.schedules if kind in schedules.KINDS else self.registry).load(kind, data)
        state = rebuild(jobs)
        self.jobs, self._seq, self._submitted = state.jobs, state.seq, state.submitted
        self._runnable, self._tasks, self._used = state.runnable, state.tasks, state.used
        for job in state.started:
            self._arm(job)
        self._changes = Changes()
        self._changed_jobs = {}
