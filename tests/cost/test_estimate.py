"""The estimate's arithmetic against cases worked by hand: per-second billing and its 60 s
minimum, packing jobs onto instances, the extra instance beyond maxvCpus, the spot ...
on-demand range, each allocation strategy, Fargate sizes, and the dates of the prices."""

from __future__ import annotations

import re

import pytest

from batchbook.cost.estimate import (
    Environment,
    Request,
    costing,
    fargate_size,
    per_instance,
    right_sizing,
)
from batchbook.cost.prices import RegionPrices, load_prices
from batchbook.errors import ClientError
from batchbook.instances import TYPES

# prices chosen to make the hand computation easy
PRICES = RegionPrices(
    "test-region-1",
    {
        "dates": {"onDemand": "2025-06-01", "spot": "2025-05-01", "fargate": "2025-04-01"},
        "onDemand": {"m5.large": 0.10, "m5.xlarge": 0.20, "c5.large": 0.08, "r5.large": 0.13,
                     "g4dn.xlarge": 0.50},
        "spot": {"m5.large": 0.03, "m5.xlarge": 0.06, "c5.large": 0.03, "r5.large": 0.04,
                 "g4dn.xlarge": 0.20},
        "fargate": {"vcpuHour": 0.04, "gbHour": 0.004},
        "fargateSpot": {"vcpuHour": 0.012, "gbHour": 0.0012},
    },
)  # fmt: skip
ONE = Request(vcpus=1, memory_mib=2048)
TIGHT = Request(vcpus=1, memory_mib=3000)  # one per c5.large (4 GiB registers 3,850 MiB)


def test_jobs_pack_onto_instances_and_bill_per_second_while_the_busiest_slot_works() -> None:
    env = Environment("EC2", max_vcpus=4, instance_types=("m5.large", "m5.xlarge"))
    est = costing(env, ONE, jobs=10, job_seconds=30, prices=PRICES)
    # m5.large packs 2: 2 instances, 180 s, $0.005; m5.xlarge packs 4: 1 instance, 90 s,
    # $0.005: the tie goes to the smaller
    run = est.run
    assert (run.placement.name, run.placement.per_instance, run.sharing) == ("m5.large", 2, 2)
    assert run.instances == 2  # maxvCpus 4 / 2 vCPUs
    assert run.wall_seconds == 90  # 10 jobs on 4 slots: 3 waves of 30 s
    assert run.billed_seconds == 180  # 5 jobs per instance, 2 slots: 3 x 30 s each
    assert run.wall_seconds_extra is None  # on-demand BEST_FIT never passes maxvCpus
    assert est.low == pytest.approx(180 * 0.03 / 3600)
    assert est.high == est.expected == pytest.approx(180 * 0.10 / 3600)
    assert run.share_hour(spot=False) == pytest.approx(0.10 / 2)  # what an attempt counts


def test_batch_may_start_one_instance_beyond_maxvcpus_but_with_on_demand_best_fit() -> None:
    env = Environment("SPOT", max_vcpus=4, instance_types=("m5.large",), strategy="BEST_FIT")
    run = costing(env, ONE, jobs=10, job_seconds=30, prices=PRICES).run
    # one more instance: jobs 4, 3, 3 over 3 instances of 2 slots -> 2 waves, 60 s each
    assert (run.wall_seconds, run.billed_seconds) == (90, 180)
    assert (run.wall_seconds_extra, run.billed_seconds_extra) == (60, 180)
    progressive = Environment("EC2", 4, ("m5.large",), "BEST_FIT_PROGRESSIVE")
    assert costing(progressive, ONE, 10, 30, PRICES).run.wall_seconds_extra == 60
    few = costing(env, ONE, jobs=4, job_seconds=30, prices=PRICES).run
    assert few.wall_seconds_extra is None  # 2 instances hold them all: no need for a third


def test_a_small_map_is_priced_on_what_it_needs_not_on_the_best_packing() -> None:
    """One job: a big instance packs more, but the job pays for all of it."""
    prices = load_prices().region("us-east-1")
    est = costing(Environment(), Request(1, 2048), jobs=1, job_seconds=10, prices=prices)
    cheapest = min(prices.instance_hour(t) for t in ("c6i.large", "m6i.large", "r6i.large"))
    assert est.expected == pytest.approx(60 * cheapest / 3600)
    assert est.run.sharing == 1
    with pytest.raises(ClientError, match="jobs: 0 is below 1"):
        costing(Environment(), Request(1, 2048), jobs=0, job_seconds=10, prices=prices)


def test_a_short_job_is_billed_its_60_second_minimum() -> None:
    env = Environment("EC2", max_vcpus=4, instance_types=("m5.large",))
    est = costing(env, ONE, jobs=1, job_seconds=5, prices=PRICES)
    assert est.run.billed_seconds == 60 and est.run.wall_seconds == 5
    assert est.run.wall_seconds_extra is None  # one instance is all it needs
    assert est.high == pytest.approx(60 * 0.10 / 3600)
    assert est.low == pytest.approx(60 * 0.03 / 3600)


def test_each_allocation_strategy_picks_as_batch_would() -> None:
    types = ("c5.large", "m5.large", "r5.large")
    # per packed job: c5 0.08 (1 fits), m5 0.05 (2), r5 0.065 (2); per vCPU: c5 0.04
    best = costing(Environment("EC2", 8, types, "BEST_FIT"), TIGHT, 2, 100, PRICES)
    assert best.run.placement.name == "m5.large"
    progressive = costing(
        Environment("EC2", 8, types, "BEST_FIT_PROGRESSIVE"), TIGHT, 2, 100, PRICES
    )
    assert progressive.run.placement.name == "c5.large"
    # spot per packed job: c5 0.03, m5 0.015, r5 0.02
    price = costing(
        Environment("SPOT", 8, types, "SPOT_PRICE_CAPACITY_OPTIMIZED"), TIGHT, 2, 100, PRICES
    )
    assert price.run.placement.name == "m5.large"
    assert price.expected == pytest.approx(100 * 0.03 / 3600)  # a spot queue pays spot
    # by capacity: any of them; c5 needs 2 instances (200 s), the others one (100 s)
    capacity = costing(
        Environment("SPOT", 8, types, "SPOT_CAPACITY_OPTIMIZED"), TIGHT, 2, 100, PRICES
    )
    assert sorted(r.placement.name for r in capacity.runs) == sorted(types)
    assert capacity.low == pytest.approx(min(100 * 0.03, 100 * 0.04, 200 * 0.03) / 3600)
    assert capacity.high == pytest.approx(max(100 * 0.10, 100 * 0.13, 200 * 0.08) / 3600)
    assert capacity.expected == pytest.approx(200 * 0.03 / 3600)  # the worst spot case
    with pytest.raises(
        ClientError, match="allocationStrategy: SPOT_PRICE_CAPACITY_OPTIMIZED is for SPOT"
    ):
        Environment("EC2", 8, types, "SPOT_PRICE_CAPACITY_OPTIMIZED")
    with pytest.raises(ClientError, match="allocationStrategy: 'CHEAPEST' is not one of BEST_FIT"):
        Environment("EC2", 8, types, "CHEAPEST")


def test_fargate_takes_the_smallest_size_that_holds_the_request_a_task_per_job() -> None:
    assert fargate_size(TIGHT) == (1, 3072)
    assert fargate_size(Request(0.25, 100)) == (0.25, 512)
    assert fargate_size(Request(3, 9000)) == (4, 9216)
    assert fargate_size(Request(8, 40000)) == (8, 40960)  # 4 GB steps from 8 vCPU
    est = costing(Environment("FARGATE", max_vcpus=2), TIGHT, 5, 30, PRICES)
    assert est.run.placement.name == "Fargate 1 vCPU 3 GB"
    assert est.run.instances == 2 and est.run.wall_seconds == 90  # 2 at once, 3 waves
    assert est.run.billed_seconds == 5 * 60  # each task its minute
    assert est.high == pytest.approx(300 * (0.04 + 3 * 0.004) / 3600)
    assert est.low == pytest.approx(300 * (0.012 + 3 * 0.0012) / 3600)
    assert est.prices_date == "2025-04-01"
    with pytest.raises(ClientError, match="larger than any Fargate task"):
        fargate_size(Request(16, 200_000))
    with pytest.raises(ClientError, match="GPU: Fargate has no GPUs"):
        fargate_size(Request(1, 2048, gpus=1))


def test_gpus_and_memory_limit_what_packs() -> None:
    assert per_instance(TYPES["g4dn.xlarge"], Request(1, 2048, gpus=1)) == 1
    assert per_instance(TYPES["m5.large"], Request(1, 8192)) == 0  # 8 GiB registers less
    assert per_instance(TYPES["m5.xlarge"], Request(0.5, 1024)) == 8
    env = Environment("EC2", 16, ("m5.large", "g4dn.xlarge"))
    assert costing(env, Request(1, 2048, gpus=1), 1, 10, PRICES).run.placement.name == "g4dn.xlarge"
    with pytest.raises(
        ClientError,
        match=r"resourceRequirements: 1 vCPU, 8192 MiB fits no instance type of m5.large",
    ):
        costing(Environment("EC2", 16, ("m5.large",)), Request(1, 8192), 1, 10, PRICES)
    with pytest.raises(ClientError, match=r"instanceTypes\[0\]: 'm5.huge' is not an instance type"):
        costing(Environment("EC2", 16, ("m5.huge",)), ONE, 1, 10, PRICES)


def test_the_prices_date_is_the_oldest_part_used() -> None:
    env = Environment("EC2", 4, ("m5.large",))
    assert costing(env, ONE, 1, 10, PRICES).prices_date == "2025-05-01"  # spot is older


def test_right_sizing_warns_above_and_far_below_the_measured_peak() -> None:
    [oom] = right_sizing(2048, 3000)
    assert "above the 2,048 MiB asked" in oom and "at least 3,840 MiB" in oom
    [waste] = right_sizing(8192, 500)
    assert "8,192 MiB asked, the sample peaked at 500 MiB; memory=768" in waste
    assert right_sizing(1024, 600) == []


def test_the_shipped_prices_cover_every_known_type_with_dates() -> None:
    prices = load_prices()
    for region in ("us-east-1", "us-west-2", "eu-west-1", "eu-central-1", "ap-northeast-1"):
        regional = prices.region(region)
        for name in TYPES:
            assert 0 < regional.instance_hour(name, spot=True) < regional.instance_hour(name)
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", regional.date())
    with pytest.raises(
        ClientError, match="region: no prices for 'mars-1'; batchbook has prices for ap-"
    ):
        prices.region("mars-1")


def test_a_region_refreshed_only_in_part_is_refused_by_name() -> None:
    from batchbook.cost.prices import Prices, merge_region

    spot_only = merge_region(None, {"dates": {"spot": "2026-12-01"}, "spot": {"m5.large": 0.03}})
    with pytest.raises(
        ClientError, match="region: the prices for sa-east-1 lack onDemand, fargate"
    ):
        Prices({"sa-east-1": spot_only}).region("sa-east-1")
