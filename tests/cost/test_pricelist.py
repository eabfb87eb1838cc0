"""The Pricing API's answers, read: GetProducts price lists written in the format AWS
documents (moto has no Pricing API), and EC2's spot price history."""

from __future__ import annotations

import datetime
import json
from typing import Any

from batchbook.cost.pricelist import (
    ec2_filters,
    fargate_prices,
    on_demand_prices,
    typical_spot,
)


def product(attributes: dict[str, str], usd: str, unit: str = "Hrs") -> str:
    """One PriceList entry as GetProducts returns it: a JSON document per product."""
    sku = "ABCDEFGH12345678"
    return json.dumps(
        {
            "product": {"productFamily": "Compute Instance", "attributes": attributes, "sku": sku},
            "serviceCode": attributes.get("servicecode", "AmazonEC2"),
            "terms": {
                "OnDemand": {
                    f"{sku}.JRTCKXETXF": {
                        "priceDimensions": {
                            f"{sku}.JRTCKXETXF.6YS6EN2CT7": {
                                "unit": unit,
                                "endRange": "Inf",
                                "description": f"${usd} per On Demand Linux Instance Hour",
                                "appliesTo": [],
                                "rateCode": f"{sku}.JRTCKXETXF.6YS6EN2CT7",
                                "beginRange": "0",
                                "pricePerUnit": {"USD": usd},
                            }
                        },
                        "sku": sku,
                        "effectiveDate": "2025-06-01T00:00:00Z",
                        "offerTermCode": "JRTCKXETXF",
                        "termAttributes": {},
                    }
                },
                "Reserved": {},
            },
            "version": "20250601000000",
            "publicationDate": "2025-06-01T00:00:00Z",
        }
    )


def ec2(instance_type: str, **changes: str) -> dict[str, str]:
    return {
        "instanceType": instance_type,
        "regionCode": "us-east-1",
        "location": "US East (N. Virginia)",
        "operatingSystem": "Linux",
        "tenancy": "Shared",
        "preInstalledSw": "NA",
        "capacitystatus": "Used",
        "licenseModel": "No License required",
        "marketoption": "OnDemand",
        "usagetype": f"BoxUsage:{instance_type}",
        "servicecode": "AmazonEC2",
        **changes,
    }


def test_on_demand_prices_keep_linux_shared_used_capacity_only() -> None:
    price_list = [
        product(ec2("m6i.large"), "0.0960000000"),
        product(ec2("m6i.large", operatingSystem="Windows"), "0.1880000000"),
        product(ec2("m6i.large", capacitystatus="AllocatedCapacityReservation"), "0.0960000000"),
        product(ec2("m6i.large", tenancy="Dedicated"), "0.1056000000"),
        product(ec2("m6i.large", marketoption="Spot"), "0.0400000000"),
        product(ec2("m6i.large", usagetype="HostBoxUsage:m6i.large"), "0.5000000000"),
        product(ec2("c6i.large"), "0.0850000000"),
        product(ec2("r6i.large"), "0.0000000000"),  # a zero price is no price
    ]
    assert on_demand_prices(price_list) == {"m6i.large": 0.096, "c6i.large": 0.085}
    fields = {f["Field"]: f["Value"] for f in ec2_filters("eu-west-1", "m6i.large")}
    assert fields == {
        "regionCode": "eu-west-1",
        "instanceType": "m6i.large",
        "operatingSystem": "Linux",
        "tenancy": "Shared",
        "preInstalledSw": "NA",
        "capacitystatus": "Used",
        "licenseModel": "No License required",
        "marketoption": "OnDemand",
    }
    assert {f["Type"] for f in ec2_filters("eu-west-1", "m6i.large")} == {"TERM_MATCH"}


def test_fargate_prices_per_vcpu_and_gb_hour_on_demand_and_spot() -> None:
    def ecs(usage: str, usd: str) -> str:
        return product({"usagetype": usage, "servicecode": "AmazonECS"}, usd)

    price_list = [
        ecs("USE1-Fargate-vCPU-Hours:perCPU", "0.04048"),
        ecs("USE1-Fargate-GB-Hours", "0.004445"),
        ecs("USE1-SpotUsage-Fargate-vCPU-Hours:perCPU", "0.01334053"),
        ecs("USE1-SpotUsage-Fargate-GB-Hours", "0.00146489"),
        ecs("USE1-Fargate-ARM-vCPU-Hours:perCPU", "0.03238"),  # ARM: another product
        ecs("USE1-Fargate-Windows-vCPU-Hours:perCPU", "0.09148"),
        ecs("USE1-Fargate-EphemeralStorage-GB-Hours", "0.000111"),
    ]
    assert fargate_prices(price_list) == {
        "fargate": {"vcpuHour": 0.04048, "gbHour": 0.004445},
        "fargateSpot": {"vcpuHour": 0.01334053, "gbHour": 0.00146489},
    }
    assert fargate_prices([]) == {"fargate": {}, "fargateSpot": {}}


def test_typical_spot_is_the_median_over_zones_of_each_zones_latest_price() -> None:
    def at(hour: int) -> datetime.datetime:
        return datetime.datetime(2026, 12, 1, hour, tzinfo=datetime.UTC)

    history: list[dict[str, Any]] = [
        {"AvailabilityZone": "us-east-1a", "InstanceType": "m6i.large",
         "ProductDescription": "Linux/UNIX", "SpotPrice": "0.0400", "Timestamp": at(9)},
        {"AvailabilityZone": "us-east-1a", "InstanceType": "m6i.large",
         "ProductDescription": "Linux/UNIX", "SpotPrice": "0.0300", "Timestamp": at(8)},
        {"AvailabilityZone": "us-east-1b", "InstanceType": "m6i.large",
         "ProductDescription": "Linux/UNIX (Amazon VPC)", "SpotPrice": "0.0350", "Timestamp": at(9)},
        {"AvailabilityZone": "us-east-1c", "InstanceType": "m6i.large",
         "ProductDescription": "Linux/UNIX", "SpotPrice": "0.0600", "Timestamp": at(7)},
        {"AvailabilityZone": "us-east-1a", "InstanceType": "m6i.large",
         "ProductDescription": "Windows", "SpotPrice": "0.2000", "Timestamp": at(9)},
    ]  # fmt: skip
    assert typical_spot(history) == {"m6i.large": 0.04}  # median of 0.04, 0.035, 0.06
