from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from batchbook.engine import Engine, EngineConfig, Host, StartAttempt, StopAttempt


class FakeClock:
    def __init__(self, start: int = 1_700_000_000_000):
        self.now = start

    def __call__(self) -> int:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += int(seconds * 1000)


class Driver:
    """Drives an Engine the way the runtime does, with processes simulated by hand."""

    def __init__(self, engine: Engine, clock: FakeClock):
        self.engine = engine
        self.clock = clock
        self.running: dict[str, StartAttempt] = {}
        self.stops: list[StopAttempt] = []
        self.started: list[StartAttempt] = []
        self._pid = 1000

    def step(self) -> list[StartAttempt]:
        new = []
        for action in self.engine.step():
            if isinstance(action, StartAttempt):
                self._pid += 1
                self.engine.attempt_started(action.task_id, self._pid)
                self.running[action.task_id] = action
                self.started.append(action)
                new.append(action)
            else:
                self.stops.append(action)
        self.engine.check_invariants()
        # started events may have produced stop actions (terminate before start)
        return new

    def finish(self, job_id: str, exit_code: int = 0, **kw: Any) -> StartAttempt:
        for task_id, action in list(self.running.items()):
            if action.job_id == job_id:
                del self.running[task_id]
                self.engine.attempt_exited(task_id, exit_code, **kw)
                self.engine.check_invariants()
                return action
        raise KeyError(f"{job_id} is not running")

    def run_one_by_one(self, count: int) -> list[str]:
        """Step ``count`` times, each time finishing the single running job; return their order."""
        order = []
        for _ in range(count):
            self.step()
            [running] = self.running_ids()
            order.append(running)
            self.finish(running)
        return order

    def running_ids(self) -> list[str]:
        return [a.job_id for a in self.running.values()]

    def status(self, job_id: str) -> str:
        return self.engine.jobs[job_id].status

    def detail(self, job_id: str) -> dict[str, Any]:
        return self.engine.describe_jobs({"jobs": [job_id]})["jobs"][0]

    def submit(self, name: str = "job", queue: str = "q", jobdef: str = "jd", **kw: Any) -> str:
        return self.engine.submit_job(
            {"jobName": name, "jobQueue": queue, "jobDefinition": jobdef, **kw}
        )["jobId"]

    def run_until_idle(self, exit_codes: dict[str, int] | None = None) -> None:
        """Finish everything that runs (with the given exit codes) until nothing is left."""
        for _ in range(100_000):
            self.step()
            if not self.running:
                return
            for job_id in self.running_ids():
                self.finish(job_id, (exit_codes or {}).get(job_id, 0))
        raise AssertionError("did not become idle")


def make_ce(
    engine: Engine, name: str = "ce", vcpus: int = 4, memory: int | None = None, **kw: Any
) -> None:
    req: dict[str, Any] = {
        "computeEnvironmentName": name,
        "type": "MANAGED",
        "computeResources": {
            "type": "EC2",
            "minvCpus": 0,
            "maxvCpus": vcpus,
            "subnets": ["subnet-local"],
            "instanceRole": "ecsInstanceRole",
        },
        **kw,
    }
    if memory is not None:
        req["tags"] = {**req.get("tags", {}), "batchbook:memoryMiB": str(memory)}
    engine.create_compute_environment(req)


def make_queue(
    engine: Engine, name: str = "q", ces: tuple[str, ...] = ("ce",), priority: int = 1
) -> None:
    engine.create_job_queue(
        {
            "jobQueueName": name,
            "priority": priority,
            "computeEnvironmentOrder": [
                {"order": i + 1, "computeEnvironment": c} for i, c in enumerate(ces)
            ],
        }
    )


def make_jobdef(
    engine: Engine, name: str = "jd", vcpus: int = 1, memory: int = 512, **kw: Any
) -> None:
    engine.register_job_definition(
        {
            "jobDefinitionName": name,
            "type": "container",
            "containerProperties": {
                "image": "python:3.11",
                "command": ["python", "-c", "pass"],
                "resourceRequirements": [
                    {"type": "VCPU", "value": str(vcpus)},
                    {"type": "MEMORY", "value": str(memory)},
                ],
            },
            **kw,
        }
    )


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def engine(clock: FakeClock) -> Iterator[Engine]:
    eng = Engine(clock, Host(cpus=2, memory_mib=8192), EngineConfig(min_timeout_seconds=1))
    make_ce(eng)
    make_queue(eng)
    make_jobdef(eng)
    yield eng
    eng.check_invariants()  # whatever the test did, the state still holds together


@pytest.fixture
def driver(engine: Engine, clock: FakeClock) -> Driver:
    return Driver(engine, clock)
