"""What attempts that ran cost (estimated): per attempt, max(60 s, its seconds) at its share
of the price of the placement it would have on AWS (the instance type's price divided by
the jobs it packs, or the Fargate size's price), from the outcomes the worker wrote.

An attempt's seconds are those from its first input's start to its last input's end, as
its outcomes record them (an attempt that wrote none, killed before its first input ended,
is not counted). Each input carries a share of its attempts' cost in proportion to its
time in them."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from batchbook.cost.estimate import MIN_BILLED_SECONDS


@dataclass(frozen=True)
class CostBasis:
    """The price a run's attempts are counted at: where they would run on AWS."""

    placement: str  # "m6i.large", "Fargate 1 vCPU 2 GB"
    hourly: float  # USD per hour of one job: the placement's price over the jobs it packs
    spot: bool
    region: str
    date: str  # of the prices, YYYY-MM-DD

    def to_json(self) -> dict[str, Any]:
        return {
            "placement": self.placement,
            "hourly": self.hourly,
            "spot": self.spot,
            "region": self.region,
            "date": self.date,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CostBasis:
        return cls(data["placement"], data["hourly"], data["spot"], data["region"], data["date"])

    def label(self) -> str:
        kind = "spot" if self.spot else "on-demand"
        return f"{self.placement} {kind}, {self.region} prices of {self.date}"


def attempt_costs(
    outcomes: Iterable[Any], chunksize: int, basis: CostBasis
) -> tuple[float, dict[int, float]]:
    """(the total, input -> its share) in USD, over every outcome of every attempt given
    (Outcome tuples: input, ok, payload, attempt, started ms, stopped ms, ...)."""
    spans: dict[tuple[int, int], list[Any]] = {}
    for o in outcomes:
        spans.setdefault((o.input // chunksize, o.attempt), []).append(o)
    total, shares = 0.0, dict[int, float]()
    for group in spans.values():
        seconds = (max(o.stopped for o in group) - min(o.started for o in group)) / 1000
        cost = max(MIN_BILLED_SECONDS, seconds) * basis.hourly / 3600
        total += cost
        busy = sum(o.stopped - o.started for o in group)
        for o in group:
            part = (o.stopped - o.started) / busy if busy else 1 / len(group)
            shares[o.input] = shares.get(o.input, 0.0) + cost * part
    return total, shares
