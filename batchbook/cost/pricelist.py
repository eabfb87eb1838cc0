"""Reading AWS's price answers: the Pricing API's GetProducts price lists (EC2 on-demand per
instance type, Fargate and Fargate Spot per vCPU-hour and GB-hour) and EC2's spot price
history, into the parts of a region's prices (see prices.py). Pure: the calls are in
batchbook.aws.prices.

A GetProducts answer's ``PriceList`` is a list of JSON documents, one per product: its
``product.attributes`` (instanceType, operatingSystem, tenancy, preInstalledSw,
capacitystatus, usagetype, ...) and ``terms.OnDemand.<offer>.priceDimensions.<rate>``
with ``unit`` and ``pricePerUnit.USD``.
"""

from __future__ import annotations

import json
import re
import statistics
from collections.abc import Iterable
from typing import Any

# The filters that leave one product per instance type: Linux, shared tenancy, no
# pre-installed software, the capacity one uses (not reservations), on demand - as AWS
# documents them
EC2_FILTERS = {
    "operatingSystem": "Linux",
    "tenancy": "Shared",
    "preInstalledSw": "NA",
    "capacitystatus": "Used",
    "licenseModel": "No License required",
    "marketoption": "OnDemand",
}


def ec2_filters(region: str, instance_type: str) -> list[dict[str, str]]:
    """GetProducts filters for ``instance_type``'s on-demand Linux price in ``region``."""
    wanted = {"regionCode": region, "instanceType": instance_type, **EC2_FILTERS}
    return [{"Type": "TERM_MATCH", "Field": k, "Value": v} for k, v in wanted.items()]


def fargate_filters(region: str) -> list[dict[str, str]]:
    return [{"Type": "TERM_MATCH", "Field": "regionCode", "Value": region}]


def _products(price_list: Iterable[str | dict[str, Any]]) -> Iterable[dict[str, Any]]:
    for item in price_list:
        yield json.loads(item) if isinstance(item, str) else item


def _hourly(product: dict[str, Any]) -> float | None:
    """The product's on-demand USD per hour, if it has one above 0."""
    for offer in product.get("terms", {}).get("OnDemand", {}).values():
        for rate in offer.get("priceDimensions", {}).values():
            usd = float(rate.get("pricePerUnit", {}).get("USD", 0) or 0)
            if usd > 0 and rate.get("unit", "").lower() in ("hrs", "hours", "hour"):
                return usd
    return None


_BOX_USAGE = re.compile(r"^([A-Z]{2,4}\d?-)?BoxUsage:")  # "BoxUsage:m6i.large", "EUW1-BoxUsage:..."


def on_demand_prices(price_list: Iterable[str | dict[str, Any]]) -> dict[str, float]:
    """Instance type -> on-demand USD per hour, from EC2 products matching EC2_FILTERS."""
    out: dict[str, float] = {}
    for product in _products(price_list):
        attrs = product.get("product", {}).get("attributes", {})
        if any(attrs.get(k, v) != v for k, v in EC2_FILTERS.items()):
            continue
        if not _BOX_USAGE.match(attrs.get("usagetype", "BoxUsage:")):
            continue  # dedicated hosts (HostBoxUsage), reservations, ...
        kind, price = attrs.get("instanceType"), _hourly(product)
        if kind and price is not None:
            out[kind] = price
    return out


# Fargate's usage types, after the region's prefix ("USE1-", "EUW1-"; none in some regions)
_REGION_PREFIX = re.compile(r"^[A-Z]{2,4}\d-")
FARGATE_USAGE = {
    "Fargate-vCPU-Hours:perCPU": ("fargate", "vcpuHour"),
    "Fargate-GB-Hours": ("fargate", "gbHour"),
    "SpotUsage-Fargate-vCPU-Hours:perCPU": ("fargateSpot", "vcpuHour"),
    "SpotUsage-Fargate-GB-Hours": ("fargateSpot", "gbHour"),
}


def fargate_prices(price_list: Iterable[str | dict[str, Any]]) -> dict[str, dict[str, float]]:
    """{"fargate": {vcpuHour, gbHour}, "fargateSpot": {...}} for Linux/x86_64 tasks (ARM and
    Windows usage types are other products); empty parts when the list lacks them."""
    out: dict[str, dict[str, float]] = {"fargate": {}, "fargateSpot": {}}
    for product in _products(price_list):
        usage = product.get("product", {}).get("attributes", {}).get("usagetype", "")
        where = FARGATE_USAGE.get(_REGION_PREFIX.sub("", usage, count=1))
        price = _hourly(product)
        if where is not None and price is not None:
            out[where[0]][where[1]] = price
    return out


def typical_spot(history: Iterable[dict[str, Any]]) -> dict[str, float]:
    """Instance type -> its typical Linux spot price: the median over its availability
    zones of each zone's latest price in the history."""
    latest: dict[tuple[str, str], tuple[Any, float]] = {}
    for entry in history:
        if not entry.get("ProductDescription", "").startswith("Linux/UNIX"):
            continue
        key = (entry["InstanceType"], entry.get("AvailabilityZone", ""))
        when, price = entry.get("Timestamp"), float(entry["SpotPrice"])
        if key not in latest or (when is not None and when > latest[key][0]):
            latest[key] = (when, price)
    by_type: dict[str, list[float]] = {}
    for (kind, _), (_, price) in latest.items():
        by_type.setdefault(kind, []).append(price)
    return {kind: statistics.median(prices) for kind, prices in by_type.items()}
