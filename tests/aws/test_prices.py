"""`batchbook aws prices --refresh` against moto's server: the spot path answers (moto keeps
a constant spot price history), the Pricing API does not (moto has none), so the on-demand
and Fargate prices keep their older date, and estimates use the fresh spot prices."""

from __future__ import annotations

import datetime
import json
from pathlib import Path

from batchbook.cost.prices import load_prices
from tests.aws.conftest import REGION, batchbook


def test_refresh_writes_the_parts_that_answer_dated_today(aws_env: dict[str, str]) -> None:
    shipped = load_prices().region(REGION)
    done = batchbook("aws", "prices", "--refresh", "--region", REGION)
    assert done.returncode == 0, done.stderr
    today = datetime.date.today().isoformat()
    assert "spot: refreshed (" in done.stdout and f"prices, {today})" in done.stdout
    assert "onDemand: not refreshed (" in done.stdout
    assert f"kept the prices of {shipped.date('onDemand')}" in done.stdout
    saved = json.loads((Path(aws_env["BATCHBOOK_HOME"]) / "prices.json").read_text())
    region = saved["regions"][REGION]
    assert region["dates"]["spot"] == today and "onDemand" not in region["dates"]
    assert region["spot"]["m6i.large"] == 0.00001  # moto's price, median over its zones
    prices = load_prices().region(REGION)  # the shipped snapshot with the fresh part over it
    assert prices.instance_hour("m6i.large", spot=True) == 0.00001
    assert prices.instance_hour("m6i.large") == shipped.instance_hour("m6i.large")
    assert prices.date("spot") == today and prices.date() == shipped.date("onDemand")
    shown = batchbook("aws", "prices", "--region", REGION)
    assert f"EC2 spot (typical), 125 types, of {today}" in shown.stdout
