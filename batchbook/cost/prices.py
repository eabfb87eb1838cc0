"""Prices, dated: EC2 on-demand and typical spot per instance-hour, Fargate and Fargate Spot
per vCPU-hour and GB-hour, for a handful of regions.

The package ships a snapshot (``prices.json``, its date on each part of each region);
``batchbook aws prices --refresh`` writes a newer one for a region to
``$BATCHBOOK_HOME/prices.json``, which is read over it. Every figure computed from these
says the date of the prices it used (``RegionPrices.date``), as YYYY-MM-DD.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from batchbook.errors import ClientError
from batchbook.home import home

SHIPPED = Path(__file__).with_name("prices.json")
PARTS = ("onDemand", "spot", "fargate")


def refreshed_path() -> Path:
    return home() / "prices.json"


def load_prices() -> Prices:
    """The shipped snapshot, with each region refreshed on this machine read over it (read
    again only when that file changed)."""
    mine = refreshed_path()
    try:
        stamp = (str(mine), mine.stat().st_mtime_ns)
    except FileNotFoundError:
        stamp = (str(mine), 0)
    return _load(stamp)


@functools.lru_cache(maxsize=4)
def _load(stamp: tuple[str, int]) -> Prices:
    data = json.loads(SHIPPED.read_text())
    mine = Path(stamp[0])
    if stamp[1]:
        for name, region in json.loads(mine.read_text()).get("regions", {}).items():
            merged = merge_region(data["regions"].get(name), region)
            data["regions"][name] = merged
    return Prices(data["regions"])


def merge_region(old: dict[str, Any] | None, new: dict[str, Any]) -> dict[str, Any]:
    """``new``'s parts over ``old``'s: a part (and its date) is replaced only where ``new``
    has it, so a refresh that got spot prices but not on-demand ones keeps the older
    on-demand prices with their own date."""
    out = json.loads(json.dumps(old or {"dates": {}, "onDemand": {}, "spot": {}}))
    for part in PARTS:
        if part in new.get("dates", {}):
            out["dates"][part] = new["dates"][part]
            if part == "fargate":
                out["fargate"], out["fargateSpot"] = new["fargate"], new["fargateSpot"]
            else:
                out[part] = {**out.get(part, {}), **new[part]}
    return out


@dataclass(frozen=True)
class Prices:
    regions: dict[str, dict[str, Any]]

    def region(self, name: str) -> RegionPrices:
        if name not in self.regions:
            raise ClientError(
                f"region: no prices for {name!r:.40}; batchbook has prices for "
                f"{', '.join(sorted(self.regions))} (`batchbook aws prices --refresh --region "
                f"{name}` fetches them with AWS credentials)"
            )
        data = self.regions[name]
        missing = [p for p in PARTS if p not in data.get("dates", {})]
        if missing:  # refreshed here in part, never shipped: not enough for an estimate
            raise ClientError(
                f"region: the prices for {name} lack {', '.join(missing)}; refresh them with "
                f"credentials that may call the Pricing API (`batchbook aws prices --refresh "
                f"--region {name}`)"
            )
        return RegionPrices(name, data)


@dataclass(frozen=True)
class RegionPrices:
    name: str
    data: dict[str, Any]

    def instance_hour(self, instance_type: str, spot: bool = False) -> float:
        """USD per hour of ``instance_type`` on demand, or its typical spot price."""
        table = self.data["spot" if spot else "onDemand"]
        if instance_type not in table:
            raise ClientError(
                f"instanceType: no {'spot' if spot else 'on-demand'} price for "
                f"{instance_type!r:.40} in {self.name}"
            )
        return float(table[instance_type])

    def fargate_hour(self, vcpus: float, memory_mib: int, spot: bool = False) -> float:
        """USD per hour of a Fargate task of ``vcpus`` and ``memory_mib``."""
        rates = self.data["fargateSpot" if spot else "fargate"]
        return float(vcpus * rates["vcpuHour"] + memory_mib / 1024 * rates["gbHour"])

    def date(self, *parts: str) -> str:
        """The date (YYYY-MM-DD) of the oldest of these parts' prices."""
        return min(self.data["dates"][p] for p in parts or PARTS)
