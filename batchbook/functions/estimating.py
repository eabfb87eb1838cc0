"""``batch.estimate``: run a few inputs here, each in a fresh interpreter as a worker would,
measure their time and peak memory, and predict what the whole map would take and cost on
AWS Batch (the arithmetic is batchbook.cost.estimate's). Sample runs go through no queue
and no store: ``batch.jobs()`` never lists them.

The last estimate of each (function, inputs, options, region) is kept for this process,
so ``batch.map(..., budget=)`` reuses it instead of sampling again.
"""

from __future__ import annotations

import html
import json
import os
import pickle
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from batchbook.cost.actual import CostBasis
from batchbook.cost.estimate import Costing, Environment, Request, costing, right_sizing
from batchbook.cost.prices import load_prices
from batchbook.errors import ClientError
from batchbook.functions.backend import Backend, name_of
from batchbook.functions.backends import current
from batchbook.functions.options import RunOptions, chunk_bounds
from batchbook.functions.payload import code_hash
from batchbook.functions.pickling import pickle_function
from batchbook.wording import count

DEFAULT_REGION = "us-east-1"
BUDGET_SAMPLE = 3  # inputs a budget check samples when no estimate matches
BUDGET_SAMPLE_SECONDS = 60  # ...each stopped after this long (the estimate is then a floor)
_LAST: dict[tuple[Any, ...], Estimate] = {}  # the latest estimate of each key, this process
_LOCK = threading.Lock()


@dataclass(frozen=True)
class Measured:
    """One sampled input: the function's seconds, the interpreter's start before it, the
    process's peak memory, and how it ended."""

    index: int
    seconds: float
    start_seconds: float
    peak_mib: float
    error: str | None = None
    capped: bool = False  # stopped at the time cap: ``seconds`` is a floor


@dataclass(frozen=True)
class Estimate:
    """What a map would take and cost on AWS Batch, from a measured sample."""

    name: str
    inputs: int
    request: Request
    sample: list[Measured]
    figures: Costing
    key: tuple[Any, ...]

    @property
    def low(self) -> float:
        """USD, on spot."""
        return self.figures.low

    @property
    def high(self) -> float:
        """USD, on demand."""
        return self.figures.high

    @property
    def expected(self) -> float:
        """USD, what the queue's kind of compute environment pays (the top of its range)."""
        return self.figures.expected

    @property
    def wall_seconds(self) -> float:
        return self.figures.run.wall_seconds

    @property
    def seconds_per_input(self) -> float:
        return sum(m.seconds for m in self.sample) / len(self.sample)

    @property
    def peak_mib(self) -> float:
        return max(m.peak_mib for m in self.sample)

    @property
    def warnings(self) -> list[str]:
        return self.figures.warnings

    @property
    def date(self) -> str:
        """The date of the prices, YYYY-MM-DD."""
        return self.figures.prices_date

    def basis(self) -> CostBasis:
        """The price the run's attempts are counted at, as it runs."""
        run = self.figures.run
        spot = self.figures.environment.spot
        hourly = run.placement.spot_hour if spot else run.placement.on_demand_hour
        return CostBasis(
            run.placement.name,
            hourly / run.placement.per_instance,
            spot,
            self.figures.region,
            self.date,
        )

    def summary(self) -> dict[str, Any]:
        """What a run keeps of its estimate (its manifest's ``cost.estimate``)."""
        return {
            "low": self.low,
            "high": self.high,
            "expected": self.expected,
            "placement": self.figures.run.placement.name,
            "region": self.figures.region,
            "date": self.date,
        }

    def lines(self) -> list[str]:
        f, run, env = self.figures, self.figures.run, self.figures.environment
        where = (
            "any of " + ", ".join(r.placement.name for r in f.runs[:4])
            if len(f.runs) > 1
            else run.placement.name
            + (f", {run.placement.per_instance} jobs each" if not env.fargate else "")
        )
        extra = (
            f" (Batch may start one more: {_duration(run.wall_seconds_extra)})"
            if run.wall_seconds_extra is not None
            else ""
        )
        kind = "spot" if env.spot else "on demand"
        return [
            f"Estimate for {self.name}: {count(self.inputs, 'input')} in "
            f"{count(f.jobs, 'job')} of about {_duration(f.job_seconds)}, from a sample of "
            f"{len(self.sample)} ({_duration(self.seconds_per_input)} and "
            f"{self.peak_mib:,.0f} MiB peak per input)",
            f"  runs on {where} ({env.kind}, {env.strategy}, maxvCpus {env.max_vcpus}): "
            f"{count(run.instances, 'instance')} at once"
            if not env.fargate
            else f"  runs on {where} ({env.kind}, maxvCpus {env.max_vcpus}): "
            f"{count(run.instances, 'task')} at once",
            f"  wall time about {_duration(run.wall_seconds)}{extra}",
            f"  cost ${f.low:,.4f} (spot) to ${f.high:,.4f} (on demand); this queue pays "
            f"about ${f.expected:,.4f} ({kind}) - {f.region} prices of {self.date}",
            *(f"  warning: {w}" for w in self.warnings),
        ]

    def __repr__(self) -> str:
        return "\n".join(self.lines())

    def _repr_html_(self) -> str:
        head, *rest = self.lines()
        items = "".join(f"<li>{html.escape(line.strip())}</li>" for line in rest)
        return f"<div><b>{html.escape(head)}</b><ul>{items}</ul></div>"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    if seconds < 0.001:
        return "under 1 ms"
    if seconds < 90:
        return f"{seconds:.3g} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def estimate(
    func: Callable[..., Any],
    *iterables: Iterable[Any],
    vcpus: float = 1,
    memory: int | str | None = None,
    gpus: int = 0,
    chunksize: int | None = None,
    sample: int = 5,
    region: str | None = None,
    queue: str | None = None,
    time_cap: float | None = None,
    **kwargs: Any,
) -> Estimate:
    """Run ``sample`` inputs (spread over the inputs) here, one fresh interpreter each, and
    predict the map on AWS Batch: where its jobs run, the wall time at the queue's
    maxvCpus and the cost, spot to on demand, with the date of the prices.

    ``queue``: a queue of the current backend, whose first compute environment (type,
    instance types, allocation strategy, maxvCpus) the prediction follows (on AWS, the
    backend's queue by default); without one, an EC2 environment of ``optimal`` instances
    with BEST_FIT and maxvCpus 256. ``region``:
    whose prices (default: the AWS backend's region, else us-east-1). ``time_cap``: stop
    each sampled input after this many seconds (the estimate is then a floor).
    ``kwargs`` go to the function, as with batch.map.
    """
    if not iterables:
        raise ClientError("iterables: give at least one iterable of inputs")
    args = list(zip(*iterables, strict=False))
    if not args:
        raise ClientError("iterables: there are no inputs to estimate")
    if not isinstance(sample, int) or isinstance(sample, bool) or sample < 1:
        raise ClientError(f"sample: {sample!r:.40} is not a whole number of inputs >= 1")
    options = RunOptions.checked(
        vcpus=vcpus, memory=memory, gpus=gpus, chunksize=chunksize, queue=queue
    )
    backend = current()
    region = region_of(backend, region)
    prices = load_prices().region(region)  # before sampling: a bad region costs nothing
    env = environment_of(backend, queue or (backend.queue if _is_aws(backend) else None))
    pickled = pickle_function(func, set())
    key = estimate_key(func, pickled, args, options, region)
    measured = run_sample(pickled, args, kwargs, sample, time_cap)
    result = predict(
        getattr(func, "__qualname__", "map"), len(args), options, env, prices, measured, key
    )
    with _LOCK:
        _LAST[key] = result
    return result


def predict(
    name: str,
    n: int,
    options: RunOptions,
    env: Environment,
    prices: Any,
    measured: list[Measured],
    key: tuple[Any, ...] = (),
) -> Estimate:
    """The estimate of ``n`` inputs from the sample ``measured`` (see batch.estimate)."""
    request = Request(options.vcpus, options.memory_mib, options.gpus)
    bounds = chunk_bounds(n, options.chunksize, max(1, int(env.max_vcpus // options.vcpus)))
    per_input = sum(m.seconds for m in measured) / len(measured)
    start = sum(m.start_seconds for m in measured) / len(measured)
    job_seconds = start + per_input * n / len(bounds)  # one interpreter start per job
    peak = max(m.peak_mib for m in measured)
    warnings = right_sizing(options.memory_mib, peak)
    failed = [m for m in measured if m.error and not m.capped]
    if failed:
        warnings.append(
            f"{count(len(failed), 'sampled input')} of {len(measured)} raised "
            f"({failed[0].error}): their time counts as if they ran"
        )
    if any(m.capped for m in measured):
        warnings.append(
            "some sampled inputs ran past the time cap and were stopped: the time and cost "
            "are at least these"
        )
    figures = costing(env, request, len(bounds), job_seconds, prices, warnings)
    return Estimate(name, n, request, measured, figures, key)


def environment_of(backend: Backend, queue: str | None) -> Environment:
    """The first compute environment of ``queue`` (on the current backend), as the
    estimate sees it; None: AWS's defaults."""
    if queue is None:
        return Environment()
    found = backend.batch.describe_job_queues(jobQueues=[queue])["jobQueues"]
    if not found:
        raise ClientError(f"queue: {queue!r:.80} is not a job queue of {backend!r}")
    order = sorted(found[0]["computeEnvironmentOrder"], key=lambda o: o["order"])
    [ce] = backend.batch.describe_compute_environments(
        computeEnvironments=[name_of(order[0]["computeEnvironment"])]
    )["computeEnvironments"]
    res = ce.get("computeResources") or {}
    kind = res.get("type", "EC2")
    return Environment(
        kind=kind,
        max_vcpus=int(res.get("maxvCpus") or 256),
        instance_types=tuple(res.get("instanceTypes") or ("optimal",)),
        strategy="BEST_FIT"
        if kind.startswith("FARGATE")
        else res.get("allocationStrategy", "BEST_FIT"),
    )


def estimate_key(
    func: Callable[..., Any],
    pickled: bytes,
    args: list[tuple[Any, ...]],
    options: RunOptions,
    region: str,
) -> tuple[Any, ...]:
    """The key an estimate of a map is kept under (see batch.estimate)."""
    sized = (options.vcpus, options.memory_mib, options.gpus, options.chunksize, options.queue)
    return (code_hash(func, pickled), len(args), _inputs_key(args), sized, region)


def last_estimate(key: tuple[Any, ...]) -> Estimate | None:
    with _LOCK:
        return _LAST.get(key)


def _inputs_key(args: list[tuple[Any, ...]]) -> str:
    """A short fingerprint of the inputs (their pickles, or their reprs if unpicklable)."""
    import hashlib

    digest = hashlib.sha256()
    for a in args:
        try:
            digest.update(pickle.dumps(a, protocol=pickle.HIGHEST_PROTOCOL))
        except Exception:
            digest.update(repr(a).encode())
    return digest.hexdigest()[:16]


def spread(n: int, k: int) -> list[int]:
    """``k`` indices spread evenly over ``range(n)``, first and last included."""
    if k >= n:
        return list(range(n))
    if k == 1:
        return [0]
    return sorted({round(i * (n - 1) / (k - 1)) for i in range(k)})


def run_sample(
    pickled_func: bytes,
    args: list[tuple[Any, ...]],
    kwargs: dict[str, Any],
    k: int,
    time_cap: float | None,
) -> list[Measured]:
    """Run ``k`` of the inputs, each in a fresh interpreter (as many at once as this machine
    has cores), and measure them."""
    indices = spread(len(args), k)
    workers = max(1, min(len(indices), os.cpu_count() or 1))
    with ThreadPoolExecutor(workers) as pool:
        return list(
            pool.map(lambda i: _run_one(i, pickled_func, args[i], kwargs, time_cap), indices)
        )


def _run_one(
    index: int,
    pickled_func: bytes,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    time_cap: float | None,
) -> Measured:
    import time

    from batchbook.functions.pickling import dumps

    payload = dumps((_Loaded(pickled_func), args, kwargs), f"input {index} of the sample")
    with tempfile.NamedTemporaryFile("r", suffix=".json") as result:
        began = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-m", "batchbook.functions.sampler", result.name],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        timer = threading.Timer(time_cap, proc.kill) if time_cap else None
        if timer:
            timer.start()
        try:
            assert proc.stdin is not None
            try:
                proc.stdin.write(payload)
                proc.stdin.close()
            except BrokenPipeError:
                pass
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
        finally:
            if timer:
                timer.cancel()
        wall = time.perf_counter() - began
        text = result.read()
    peak = usage.ru_maxrss / 1024  # KiB on Linux
    if not text:  # killed: at the cap, or by the system
        capped = time_cap is not None and wall >= time_cap
        error = None if capped else f"the interpreter ended with status {proc.returncode}"
        return Measured(index, wall, 0.0, peak, error, capped)
    measured = json.loads(text)
    seconds = measured["seconds"]
    return Measured(index, seconds, max(0.0, wall - seconds), peak, measured["error"])


class _Loaded:
    """The pickled function, loaded on the other side (pickled once, sent to each input)."""

    def __init__(self, pickled: bytes):
        self.pickled = pickled

    def __reduce__(self) -> tuple[Any, ...]:
        return (pickle.loads, (self.pickled,))


def budget_check(
    func: Callable[..., Any],
    pickled: bytes,
    args: list[tuple[Any, ...]],
    kwargs: dict[str, Any],
    options: RunOptions,
    backend: Backend,
    budget: float,
    queue: str | None = None,
) -> Estimate:
    """The estimate a map with ``budget=`` is held to: the last matching one, else a small
    sample with a time cap; BudgetExceeded (nothing submitted) when it is above."""
    from batchbook.errors import BudgetExceeded

    region = region_of(backend)
    key = estimate_key(func, pickled, args, options, region)
    found = last_estimate(key)
    if found is None:
        env = environment_of(backend, queue if _is_aws(backend) else None)
        measured = run_sample(pickled, args, kwargs, BUDGET_SAMPLE, BUDGET_SAMPLE_SECONDS)
        name = getattr(func, "__qualname__", "map")
        found = predict(name, len(args), options, env, load_prices().region(region), measured, key)
    if found.expected > budget:
        raise BudgetExceeded(
            f"budget: the map is estimated at ${found.expected:,.4f} "
            f"(${found.low:,.4f} on spot to ${found.high:,.4f} on demand; {found.figures.region} "
            f"prices of {found.date}), above its budget of ${budget:,.4f}; nothing was "
            "submitted. batch.estimate(...) shows the figures; raise budget=, or ask for less"
        )
    return found


def _is_aws(backend: Backend) -> bool:
    from batchbook.functions.aws_backend import AwsBackend

    return isinstance(backend, AwsBackend)


def region_of(backend: Backend, region: str | None = None) -> str:
    """Whose prices: ``region``, else the AWS backend's region, else us-east-1."""
    return (
        region or (getattr(backend, "region", None) if _is_aws(backend) else None) or DEFAULT_REGION
    )


def default_basis(
    backend: Backend, options: RunOptions, queue: str | None = None
) -> CostBasis | None:
    """The price a map's attempts are counted at without an estimate: the placement Batch
    would pick for its request on ``queue`` (on AWS; locally, on AWS's defaults: an EC2
    environment of ``optimal`` instances), no sample needed; None if none holds it."""
    from batchbook.cost.estimate import placements

    region = region_of(backend)
    try:
        env = environment_of(backend, queue) if _is_aws(backend) else Environment()
        prices = load_prices().region(region)
        [first, *_] = placements(
            env, Request(options.vcpus, options.memory_mib, options.gpus), prices
        )
    except ClientError:
        return None
    hourly = first.spot_hour if env.spot else first.on_demand_hour
    return CostBasis(
        first.name,
        hourly / first.per_instance,
        env.spot,
        region,
        prices.date(*(("fargate",) if env.fargate else ("onDemand", "spot"))),
    )
