"""What attempts that ran cost: per attempt of a chunk, max(60 s, its first start to its
last stop) at the basis's price, shared among its inputs by their time."""

from __future__ import annotations

import pytest

from batchbook.cost.actual import CostBasis, attempt_costs
from batchbook.functions.payload import Outcome

BASIS = CostBasis("m5.large", 0.36, False, "us-east-1", "2025-06-01")  # $0.0001 a second


def outcome(index: int, attempt: int, started_s: float, stopped_s: float) -> Outcome:
    return Outcome(
        index, True, None, attempt, int(started_s * 1000), int(stopped_s * 1000), 0, 0, 0
    )


def test_each_chunk_attempt_bills_its_span_with_the_minute_minimum_shared_by_time() -> None:
    outcomes = [
        outcome(0, 1, 0, 30), outcome(1, 1, 30, 120),  # chunk 0, attempt 1: 120 s
        outcome(2, 1, 0, 10), outcome(3, 1, 10, 20),  # chunk 1, attempt 1: 20 s -> 60 s
        outcome(3, 2, 100, 110),  # chunk 1, attempt 2 (input 3 again): 10 s -> 60 s
    ]  # fmt: skip
    total, shares = attempt_costs(outcomes, chunksize=2, basis=BASIS)
    assert total == pytest.approx((120 + 60 + 60) * 0.0001)
    assert shares[0] == pytest.approx(120 * 0.0001 * 30 / 120)
    assert shares[1] == pytest.approx(120 * 0.0001 * 90 / 120)
    assert shares[2] == pytest.approx(60 * 0.0001 / 2)  # 10 s of the attempt's 20 s
    assert shares[3] == pytest.approx(60 * 0.0001 / 2 + 60 * 0.0001)  # and all of attempt 2
    assert sum(shares.values()) == pytest.approx(total)
    assert attempt_costs([], 2, BASIS) == (0.0, {})
    same_instant = [outcome(4, 1, 5, 5), outcome(5, 1, 5, 5)]  # no time: shared evenly
    assert attempt_costs(same_instant, 2, BASIS)[1] == {
        4: pytest.approx(0.003),
        5: pytest.approx(0.003),
    }


def test_records_written_before_kept_output_have_none() -> None:
    old = Outcome._make((0, True, 1, 1, 0, 0, 0, 0, 0, None))
    assert old.kept() is None
    nine = tuple.__new__(Outcome, (0, True, 1, 1, 0, 0, 0, 0, 0))  # as read from an old block
    assert nine.kept() is None
    kept = Outcome._make((0, True, 1, 1, 0, 0, 0, 0, 2, (["a", "b"], 0, [])))
    assert kept.kept() is not None and kept.kept().lines() == ["a", "b"]  # type: ignore[union-attr]
