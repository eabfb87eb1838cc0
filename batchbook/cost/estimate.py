"""What a map would cost on AWS Batch, from a measured sample: the arithmetic, pure.

Given how long an input takes and how much memory it peaks at, the request (vCPUs,
memory, GPUs), how many jobs of how many inputs, and the queue's compute environment
(EC2, SPOT, FARGATE or FARGATE_SPOT; its instance types, allocation strategy and
maxvCpus), it finds where a job runs as AWS Batch would place it, how many run at once,
the wall time and the cost:

- **Placement.** Fargate: the smallest Fargate size at least the request. EC2 and Spot: the
  instance types the compute environment names (keywords and families expanded) that hold
  one job, each packing ``min(vCPUs / asked, registered memory / asked, GPUs / asked)``
  jobs; then by allocation strategy: BEST_FIT the lowest cost of these jobs (on-demand, or
  spot in a SPOT environment), BEST_FIT_PROGRESSIVE the lowest price per vCPU,
  SPOT_PRICE_CAPACITY_OPTIMIZED the lowest spot cost of these jobs,
  SPOT_CAPACITY_OPTIMIZED any of them (it picks by capacity, not price: the cost is the
  range over all of them).
- **Scale.** ``floor(maxvCpus / the type's vCPUs)`` instances at once (at least one), never
  more than the jobs need; Batch may start one instance beyond maxvCpus (with any strategy
  but on-demand BEST_FIT), which shortens the wall time and may add to the cost: both are
  counted.
- **Billing.** Per second, at least 60 s per instance (or Fargate task); an instance is
  billed while its busiest slot works (jobs spread evenly over the instances, then over
  its slots).

The cost is a range: spot ... on-demand of the same placement, with the expected figure
the compute environment's kind pays. Prices come dated (see prices.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from batchbook.cost.prices import RegionPrices
from batchbook.errors import ClientError
from batchbook.instances import InstanceType, expand

MIN_BILLED_SECONDS = 60  # EC2 (Linux) and Fargate bill per second, with a minimum of 60 s
# The ECS agent and the OS keep part of an instance's memory: Batch places a job by what
# the instance registers (AWS Batch's "compute resource memory management": an 8 GiB
# instance registers about 7.5 GiB)
REGISTERED_MEMORY = 0.94
STRATEGIES = (
    "BEST_FIT",
    "BEST_FIT_PROGRESSIVE",
    "SPOT_CAPACITY_OPTIMIZED",
    "SPOT_PRICE_CAPACITY_OPTIMIZED",
)
KINDS = ("EC2", "SPOT", "FARGATE", "FARGATE_SPOT")
# Fargate's task sizes: vCPUs -> the memory (MiB) each allows
FARGATE_SIZES: dict[float, tuple[int, ...]] = {
    0.25: (512, 1024, 2048),
    0.5: tuple(range(1024, 4096 + 1, 1024)),
    1: tuple(range(2048, 8192 + 1, 1024)),
    2: tuple(range(4096, 16384 + 1, 1024)),
    4: tuple(range(8192, 30720 + 1, 1024)),
    8: tuple(range(16384, 61440 + 1, 4096)),
    16: tuple(range(32768, 122880 + 1, 8192)),
}


@dataclass(frozen=True)
class Request:
    """What one job asks for."""

    vcpus: float
    memory_mib: int
    gpus: int = 0


@dataclass(frozen=True)
class Environment:
    """What the estimate needs of the compute environment a queue's jobs go to."""

    kind: str = "EC2"
    max_vcpus: int = 256
    instance_types: tuple[str, ...] = ("optimal",)
    strategy: str = "BEST_FIT"

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ClientError(f"type: {self.kind!r:.40} is not one of {', '.join(KINDS)}")
        if self.strategy not in STRATEGIES:
            raise ClientError(
                f"allocationStrategy: {self.strategy!r:.40} is not one of {', '.join(STRATEGIES)}"
            )
        if self.strategy.startswith("SPOT_") and self.kind != "SPOT":
            raise ClientError(
                f"allocationStrategy: {self.strategy} is for SPOT compute environments; "
                f"a {self.kind} one uses BEST_FIT or BEST_FIT_PROGRESSIVE"
            )
        if self.max_vcpus < 1:
            raise ClientError(f"maxvCpus: {self.max_vcpus} is below 1: no job would run")

    @property
    def fargate(self) -> bool:
        return self.kind.startswith("FARGATE")

    @property
    def spot(self) -> bool:
        return self.kind in ("SPOT", "FARGATE_SPOT")


@dataclass(frozen=True)
class Placement:
    """Where a job runs: an instance type (packing ``per_instance`` jobs) or a Fargate size."""

    name: str  # "m6i.large", or "Fargate 1 vCPU 2 GB"
    vcpus: float
    memory_mib: int
    per_instance: int  # jobs at once on one instance (1 on Fargate: a task per job)
    on_demand_hour: float  # USD
    spot_hour: float


@dataclass(frozen=True)
class Run:
    """How a placement runs ``jobs`` jobs of ``job_seconds`` each within maxvCpus."""

    placement: Placement
    instances: int  # at once, within maxvCpus
    wall_seconds: float
    billed_seconds: float  # instance-seconds (task-seconds on Fargate), minimums included
    # with the one instance more Batch may start beyond maxvCpus (None: it would not)
    wall_seconds_extra: float | None = None
    billed_seconds_extra: float | None = None
    sharing: int = 1  # the jobs an instance holds at once in this run (<= per_instance)

    def share_hour(self, spot: bool) -> float:
        """USD per hour of one job: its share of its instance (its task on Fargate)."""
        return _hourly(self.placement, spot) / self.sharing

    def cost(self, spot: bool) -> float:
        return self.billed_seconds * _hourly(self.placement, spot) / 3600

    def cost_most(self, spot: bool) -> float:
        """The cost, counting the extra instance where it would bill more."""
        billed = max(self.billed_seconds, self.billed_seconds_extra or 0)
        return billed * _hourly(self.placement, spot) / 3600

    def cost_least(self, spot: bool) -> float:
        billed = min(self.billed_seconds, self.billed_seconds_extra or math.inf)
        return billed * _hourly(self.placement, spot) / 3600


@dataclass(frozen=True)
class Costing:
    """The estimate's figures: where the jobs run, how long, and what it costs (USD)."""

    jobs: int
    job_seconds: float
    environment: Environment
    runs: list[Run]  # one, or every candidate with SPOT_CAPACITY_OPTIMIZED
    low: float  # spot
    high: float  # on demand
    expected: float  # what this compute environment's kind pays (the worst of its range)
    prices_date: str
    region: str
    warnings: list[str] = field(default_factory=list)

    @property
    def run(self) -> Run:
        """The placement Batch would pick (the first candidate when it picks by capacity)."""
        return self.runs[0]


def fargate_size(request: Request) -> tuple[float, int]:
    """The smallest Fargate task size holding ``request``: (vCPUs, memory MiB)."""
    if request.gpus:
        raise ClientError("resourceRequirements GPU: Fargate has no GPUs; use an EC2 queue")
    for vcpus, memories in FARGATE_SIZES.items():
        if vcpus >= request.vcpus:
            for memory in memories:
                if memory >= request.memory_mib:
                    return vcpus, memory
    raise ClientError(
        f"resourceRequirements: {request.vcpus:g} vCPU and {request.memory_mib} MiB is larger "
        "than any Fargate task (at most 16 vCPU and 120 GB)"
    )


def per_instance(kind: InstanceType, request: Request) -> int:
    """How many jobs of ``request`` one instance of ``kind`` holds at once (0: none)."""
    fits = [
        int(kind.vcpus // request.vcpus),
        int(kind.memory_mib * REGISTERED_MEMORY // request.memory_mib),
    ]
    if request.gpus:
        fits.append(kind.gpus // request.gpus)
    return max(0, min(fits))


def placements(env: Environment, request: Request, prices: RegionPrices) -> list[Placement]:
    """Where a job could run: the Fargate size, or each instance type that holds one."""
    if env.fargate:
        vcpus, memory = fargate_size(request)
        return [
            Placement(
                f"Fargate {vcpus:g} vCPU {memory / 1024:g} GB",
                vcpus,
                memory,
                1,
                prices.fargate_hour(vcpus, memory),
                prices.fargate_hour(vcpus, memory, spot=True),
            )
        ]
    found = [
        Placement(
            t.name,
            t.vcpus,
            t.memory_mib,
            n,
            prices.instance_hour(t.name),
            prices.instance_hour(t.name, spot=True),
        )
        for t in expand(list(env.instance_types))
        if (n := per_instance(t, request)) > 0
    ]
    if not found:
        raise ClientError(
            f"resourceRequirements: {request.vcpus:g} vCPU, {request.memory_mib} MiB"
            + (f", {request.gpus} GPU" if request.gpus else "")
            + f" fits no instance type of {', '.join(env.instance_types)} (the largest "
            "registers about 94% of its memory)"
        )
    return found


def _hourly(placement: Placement, spot: bool) -> float:
    return placement.spot_hour if spot else placement.on_demand_hour


def run_on(placement: Placement, jobs: int, job_seconds: float, env: Environment) -> Run:
    """How ``jobs`` jobs of ``job_seconds`` run on ``placement`` within ``env``'s maxvCpus."""
    if env.fargate:
        at_once = max(1, int(env.max_vcpus // placement.vcpus))
        waves = math.ceil(jobs / at_once)
        billed = jobs * max(MIN_BILLED_SECONDS, job_seconds)
        return Run(placement, min(at_once, jobs), waves * job_seconds, billed)
    k = placement.per_instance
    most = max(1, int(env.max_vcpus // placement.vcpus))
    needed = math.ceil(jobs / k)
    instances = min(most, needed)
    wall = math.ceil(jobs / (instances * k)) * job_seconds
    billed = _instance_seconds(jobs, instances, k, job_seconds)
    sharing = min(k, math.ceil(jobs / instances))  # jobs an instance holds at once here
    # Batch may start one instance beyond maxvCpus, with any strategy but on-demand
    # BEST_FIT (the API reference's ComputeResource.maxvCpus)
    if needed > most and not (env.kind == "EC2" and env.strategy == "BEST_FIT"):
        return Run(
            placement,
            instances,
            wall,
            billed,
            math.ceil(jobs / ((instances + 1) * k)) * job_seconds,
            _instance_seconds(jobs, instances + 1, k, job_seconds),
            sharing,
        )
    return Run(placement, instances, wall, billed, sharing=sharing)


def pick(runs: list[Run], env: Environment) -> list[Run]:
    """The run the allocation strategy picks, first (SPOT_CAPACITY_OPTIMIZED: all of them,
    cheapest first: it picks by capacity, not price). Ties go to the smaller type."""
    if env.strategy == "BEST_FIT_PROGRESSIVE":  # the lowest price per vCPU
        key = lambda r: (_hourly(r.placement, env.spot) / r.placement.vcpus, r.placement.vcpus)  # noqa: E731
    elif env.strategy == "SPOT_CAPACITY_OPTIMIZED":
        return sorted(runs, key=lambda r: (r.cost(spot=True), r.placement.vcpus))
    else:  # BEST_FIT, SPOT_PRICE_CAPACITY_OPTIMIZED: the lowest cost of these jobs
        key = lambda r: (r.cost(spot=env.spot), r.placement.vcpus)  # noqa: E731
    return [min(runs, key=key)]


def _instance_seconds(jobs: int, instances: int, per: int, job_seconds: float) -> float:
    """Billed instance-seconds: jobs spread evenly over the instances, each instance busy
    while its busiest slot is, and billed at least MIN_BILLED_SECONDS."""
    each, more = divmod(jobs, instances)
    total = 0.0
    for count, n in ((each + 1, more), (each, instances - more)):
        if n and count:
            total += n * max(MIN_BILLED_SECONDS, math.ceil(count / per) * job_seconds)
    return total


def costing(
    env: Environment,
    request: Request,
    jobs: int,
    job_seconds: float,
    prices: RegionPrices,
    warnings: list[str] | None = None,
) -> Costing:
    """The estimate for ``jobs`` jobs of ``job_seconds`` each on ``env`` (see the module)."""
    if jobs < 1:
        raise ClientError(f"jobs: {jobs} is below 1: there is nothing to estimate")
    runs = pick([run_on(p, jobs, job_seconds, env) for p in placements(env, request, prices)], env)
    low = min(r.cost_least(spot=True) for r in runs)
    high = max(r.cost_most(spot=False) for r in runs)
    expected = max(r.cost_most(spot=env.spot) for r in runs)
    return Costing(
        jobs,
        job_seconds,
        env,
        runs,
        low,
        high,
        expected,
        prices.date(*(("fargate",) if env.fargate else ("onDemand", "spot"))),
        prices.name,
        warnings or [],
    )


def right_sizing(memory_mib: int, peak_mib: float) -> list[str]:
    """Warnings for a request far above the measured peak, or below it."""
    if peak_mib > memory_mib:
        return [
            f"memory: the sample peaked at {peak_mib:,.0f} MiB, above the {memory_mib:,} MiB "
            f"asked: Batch would kill these jobs for memory (OOM); ask for at least "
            f"{_round_up(peak_mib * 1.25):,} MiB"
        ]
    if memory_mib >= 2 * peak_mib and memory_mib - peak_mib >= 1024:
        return [
            f"memory: {memory_mib:,} MiB asked, the sample peaked at {peak_mib:,.0f} MiB; "
            f"memory={_round_up(peak_mib * 1.5):,} would pack more jobs on each instance "
            "(or a smaller Fargate size) for less"
        ]
    return []


def _round_up(mib: float) -> int:
    return int(math.ceil(mib / 256) * 256)
