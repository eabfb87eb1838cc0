"""``batch.estimate``: run a few inputs here, each in a fresh interpreter as a worker would,
measure their time and peak memory, and predict what the whole map would take and cost on
AWS Batch (the arithmetic is batchbook.cost.estimate's). Sample runs go through no queue
and no store: ``batch.jobs()`` never lists them.

The last estimate of each (function, inputs, options, region) is kept for this process,
so ``batch.map(..., budget=)`` reuses it instead of sampling again.
"""

from __future__ import annotations

import pickle
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from batchbook.cost.actual import CostBasis
from batchbook.cost.estimate import (
    MIN_BILLED_SECONDS,
    Costing,
    Environment,
    Request,
    costing,
    right_sizing,
)
from batchbook.cost.prices import load_prices
from batchbook.display import Lines
from batchbook.errors import BatchbookError, ClientError
from batchbook.functions.backend import Backend, name_of
from batchbook.functions.backends import current
from batchbook.functions.options import RunOptions, chunk_bounds
from batchbook.functions.pickling import pickle_function
from batchbook.functions.sampler import Measured, run_sample
from batchbook.wording import count

DEFAULT_REGION = "us-east-1"
BUDGET_SAMPLE = 3  # inputs a budget check samples when no estimate matches
BUDGET_SAMPLE_SECONDS = 60  # ...each stopped after this long (the estimate is then a floor)
_LAST: dict[tuple[Any, ...], Estimate] = {}  # the latest estimate of each key, this process
_LOCK = threading.Lock()


@dataclass(frozen=True, repr=False)  # shown as its lines
class Estimate(Lines):
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
        return basis_of(self.figures)

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
    key = estimate_key(pickled, args, kwargs, options, region)
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


ENVIRONMENT_SECONDS = 30.0  # how long a queue's environment, once described, is taken as is
_ENVIRONMENTS: dict[tuple[int, str], tuple[float, Environment]] = {}


def environment_of(backend: Backend, queue: str | None) -> Environment:
    """The first compute environment of ``queue`` (on ``backend``), as the estimate sees
    it (described at most every 30 s: each map asks); None: AWS's defaults."""
    import time

    if queue is None:
        return Environment()
    key = (id(backend), queue)
    with _LOCK:
        seen = _ENVIRONMENTS.get(key)
    if seen is not None and time.monotonic() - seen[0] < ENVIRONMENT_SECONDS:
        return seen[1]
    env = _describe_environment(backend, queue)
    with _LOCK:
        _ENVIRONMENTS[key] = (time.monotonic(), env)
    return env


def _describe_environment(backend: Backend, queue: str) -> Environment:
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
    pickled: bytes,
    args: list[tuple[Any, ...]],
    kwargs: dict[str, Any],
    options: RunOptions,
    region: str,
) -> tuple[str, tuple[Any, ...], str]:
    """The key an estimate of a map is kept under: the function as pickled (its code, the
    values its closure and globals hold, the local modules it uses), the inputs and keyword
    arguments, the sizes asked, the queue and the region."""
    sized = (options.vcpus, options.memory_mib, options.gpus, options.chunksize, options.queue)
    return (_fingerprint([pickled, *args, kwargs]), sized, region)


def last_estimate(key: tuple[Any, ...]) -> Estimate | None:
    with _LOCK:
        return _LAST.get(key)


def _fingerprint(parts: list[Any]) -> str:
    """A digest of these values' pickles (reprs for those that do not pickle)."""
    import hashlib

    digest = hashlib.sha256()
    for part in parts:
        try:
            data = part if isinstance(part, bytes) else pickle.dumps(part, protocol=5)
        except Exception:
            data = repr(part).encode()
        digest.update(len(data).to_bytes(8, "big") + data)
    return digest.hexdigest()


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
    key = estimate_key(pickled, args, kwargs, options, region)
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
    backend: Backend, options: RunOptions, queue: str | None, jobs: int
) -> CostBasis | None:
    """The price a map's attempts are counted at without an estimate: where Batch would
    put ``jobs`` jobs of its request on ``queue`` (on AWS; locally, on AWS's defaults: an
    EC2 environment of ``optimal`` instances), taking each to last a billed minute; None
    when nothing holds the request or the queue cannot say (a map never fails for it)."""
    region = region_of(backend)
    try:
        env = environment_of(backend, queue) if _is_aws(backend) else Environment()
        request = Request(options.vcpus, options.memory_mib, options.gpus)
        figures = costing(env, request, jobs, MIN_BILLED_SECONDS, load_prices().region(region))
    except (BatchbookError, KeyError, IndexError, ValueError):
        return None
    return basis_of(figures)


def basis_of(figures: Costing) -> CostBasis:
    """Attempts counted at their share of the placement ``figures`` picked."""
    run, env = figures.run, figures.environment
    return CostBasis(
        run.placement.name, run.share_hour(env.spot), env.spot, figures.region, figures.prices_date
    )
