"""What a map has cost so far (estimated): its attempts at the price of where they would run
on AWS (see batchbook.cost.actual), against its estimate and budget. The same figures on
both backends: a local run shows what it would have cost on AWS."""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from batchbook.cost.actual import CostBasis, attempt_costs

if TYPE_CHECKING:
    from batchbook.functions.runstate import RunState


@dataclass(frozen=True)
class RunCost:
    """USD so far, per input, and what it is held to."""

    total: float
    per_input: dict[int, float]
    basis: CostBasis | None
    estimate: dict[str, Any] | None  # low, high, expected, placement, region, date
    budget: float | None

    def line(self) -> str:
        return "cost " + self._figures()

    recorded: bool = True  # False: the run predates batchbook's cost records

    def _figures(self) -> str:
        if not self.recorded:
            return "not recorded (the run was submitted before batchbook counted costs)"
        if self.basis is None:
            return "not estimated (no AWS placement holds this request)"
        text = f"${self.total:,.4f} so far (estimated: {self.basis.label()})"
        if self.estimate:
            e = self.estimate
            text += f"; estimate ${e['low']:,.4f} (spot) to ${e['high']:,.4f} (on demand)"
        if self.budget is not None:
            text += f"; budget ${self.budget:,.4f}"
        return text

    def __repr__(self) -> str:
        return self.line()

    def _repr_html_(self) -> str:
        return f"<div><b>Cost</b> {html.escape(self._figures())}</div>"


def run_cost(job: RunState) -> RunCost:
    """The cost of ``job``'s attempts so far, and of its retry_failed() runs, from the
    outcomes it has read (call its _refresh first)."""
    held = job.manifest.get("cost") or {}
    basis = CostBasis.from_json(held["basis"]) if held.get("basis") else None
    total, shares = 0.0, dict[int, float]()
    if basis is not None:
        outcomes = [*job._outcomes.values(), *job.earlier]
        total, shares = attempt_costs(outcomes, job.manifest["chunksize"], basis)
    for follow_up in job.follow_ups:
        theirs = run_cost(follow_up)
        total += theirs.total
        for j, i in enumerate(follow_up.manifest["parent"]["indices"]):
            if j in theirs.per_input:
                shares[i] = shares.get(i, 0.0) + theirs.per_input[j]
    budget = job.manifest["options"].get("budget")
    return RunCost(total, shares, basis, held.get("estimate"), budget, "cost" in job.manifest)
