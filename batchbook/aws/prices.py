"""``batchbook aws prices [--refresh]``: the prices a region's estimates use, and fetching
newer ones with AWS credentials: on-demand EC2 and Fargate from the Pricing API (GetProducts
with the documented filters; its endpoint is in us-east-1), typical spot prices from EC2's
spot price history. Each part that answers is written, dated today, to
``$BATCHBOOK_HOME/prices.json``; a part that does not keeps its older prices and date."""

from __future__ import annotations

import datetime
import json
import os
from collections.abc import Callable
from typing import Any

from batchbook.aws.clients import Aws
from batchbook.cost.pricelist import (
    ec2_filters,
    fargate_filters,
    fargate_prices,
    on_demand_prices,
    typical_spot,
)
from batchbook.cost.prices import load_prices, merge_region, refreshed_path
from batchbook.instances import TYPES

PRICING_REGION = "us-east-1"  # where the Pricing API answers


def refresh(region: str, profile: str | None, out: Callable[[str], None]) -> dict[str, str]:
    """Fetch what answers for ``region`` and write it; part -> what happened."""
    from botocore.exceptions import BotoCoreError, ClientError

    today = datetime.date.today().isoformat()
    # a few attempts for the Pricing API: a refresh that cannot have it says so soon
    pricing, ec2 = Aws(PRICING_REGION, profile, attempts=3).pricing, Aws(region, profile).ec2
    fresh: dict[str, Any] = {"dates": {}}
    said: dict[str, str] = {}
    parts: list[tuple[str, Callable[[], dict[str, Any]]]] = [
        ("onDemand", lambda: {"onDemand": _on_demand(pricing, region, out)}),
        ("fargate", lambda: _fargate(pricing, region)),
        ("spot", lambda: {"spot": _spot(ec2)}),
    ]
    pricing_failed = None
    for part, fetch in parts:
        try:
            if pricing_failed and part != "spot":  # the same API: no second wait for it
                raise pricing_failed
            got = fetch()
        except (ClientError, BotoCoreError) as e:
            first = str(e).splitlines()[0] if str(e) else type(e).__name__
            said[part] = f"not refreshed ({first}); kept the prices of {_date(region, part)}"
            if part != "spot":
                pricing_failed = e
            continue
        if not any(got.values()):
            said[part] = f"no prices in the answer; kept the prices of {_date(region, part)}"
            continue
        fresh.update(got)
        fresh["dates"][part] = today
        said[part] = f"refreshed ({sum(len(v) for v in got.values())} prices, {today})"
    if fresh["dates"]:
        path = refreshed_path()
        mine = json.loads(path.read_text()) if path.exists() else {"regions": {}}
        mine["regions"][region] = merge_region(mine["regions"].get(region), fresh)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".json.part")
        partial.write_text(json.dumps(mine, indent=1, sort_keys=True))
        os.replace(partial, path)  # whole or not at all: estimates read it
    return said


def _date(region: str, part: str) -> str:
    try:
        return load_prices().region(region).date(part)
    except Exception:
        return "none: batchbook has no prices for this region"


def _on_demand(pricing: Any, region: str, out: Callable[[str], None]) -> dict[str, float]:
    found: dict[str, float] = {}
    names = sorted(TYPES)
    for i, name in enumerate(names, 1):
        page = pricing.get_products(
            ServiceCode="AmazonEC2", Filters=ec2_filters(region, name), MaxResults=10
        )
        found.update(on_demand_prices(page["PriceList"]))
        if i % 25 == 0 or i == len(names):
            out(f"  on-demand prices: {i} of {len(names)} instance types asked")
    return found


def _fargate(pricing: Any, region: str) -> dict[str, Any]:
    items: list[Any] = []
    for page in pricing.get_paginator("get_products").paginate(
        ServiceCode="AmazonECS", Filters=fargate_filters(region)
    ):
        items += page["PriceList"]
    rates = fargate_prices(items)
    complete = all(len(rates[p]) == 2 for p in ("fargate", "fargateSpot"))
    return rates if complete else {}


def _spot(ec2: Any) -> dict[str, float]:
    history: list[dict[str, Any]] = []
    now = datetime.datetime.now(datetime.UTC)
    for page in ec2.get_paginator("describe_spot_price_history").paginate(
        InstanceTypes=sorted(TYPES), ProductDescriptions=["Linux/UNIX"], StartTime=now
    ):
        history += page["SpotPriceHistory"]
    return typical_spot(history)


def show(region: str) -> list[str]:
    """The prices estimates in ``region`` use, with their dates."""
    prices = load_prices().region(region)
    data = prices.data
    lines = [f"prices for {region} (USD):"]
    lines.append(
        f"  EC2 on demand, {len(data['onDemand'])} instance types, of {prices.date('onDemand')}"
    )
    lines.append(f"  EC2 spot (typical), {len(data['spot'])} types, of {prices.date('spot')}")
    for kind in ("m6i.large", "c6i.large", "r6i.large", "m6g.large", "g5.xlarge"):
        if kind in data["onDemand"]:
            spot = data["spot"].get(kind)
            lines.append(
                f"    {kind:<11} ${data['onDemand'][kind]:.4f}/h on demand"
                + (f", ${spot:.4f}/h spot" if spot is not None else "")
            )
    fg, fs = data["fargate"], data["fargateSpot"]
    lines.append(
        f"  Fargate ${fg['vcpuHour']:.5f} per vCPU-hour + ${fg['gbHour']:.6f} per GB-hour; "
        f"Spot ${fs['vcpuHour']:.5f} + ${fs['gbHour']:.6f}, of {prices.date('fargate')}"
    )
    return lines
