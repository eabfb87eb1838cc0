"""Instance types by name: the facts of the common Batch families, AWS's keywords expanded
as AWS documents them, and an unknown type refused by name by the engine."""

from __future__ import annotations

import pytest

from batchbook.engine import Engine
from batchbook.errors import ClientError
from batchbook.instances import KEYWORDS, TYPES, expand


def test_facts_of_the_common_families() -> None:
    assert (TYPES["m6i.large"].vcpus, TYPES["m6i.large"].memory_mib) == (2, 8192)
    assert (TYPES["c5.9xlarge"].vcpus, TYPES["c5.9xlarge"].memory_mib) == (36, 72 * 1024)
    assert (TYPES["r6g.medium"].arch, TYPES["r6g.medium"].memory_mib) == ("arm64", 8192)
    assert (TYPES["p4d.24xlarge"].gpus, TYPES["g4dn.12xlarge"].gpus) == (8, 4)
    for family in ("m5", "c5", "r5", "m6i", "c6i", "r6i", "c7i", "m6g", "c6g", "r6g", "c7g"):
        assert f"{family}.large" in TYPES
    for gpu in ("g4dn.xlarge", "g5.xlarge", "p3.2xlarge", "p4d.24xlarge"):
        assert TYPES[gpu].gpus >= 1


def test_keywords_expand_as_aws_documents_them() -> None:
    optimal = expand(["optimal"])
    assert {t.family for t in optimal} == {"m6i", "c6i", "r6i", "c7i"}  # since 2025-11-01
    assert {t.family for t in expand(["default_arm64"])} == {"m6g", "c6g", "r6g", "c7g"}
    assert {t.arch for t in expand(["default_arm64"])} == {"arm64"}
    assert expand(["optimal"]) == expand(["default_x86_64"]) and set(KEYWORDS) == {
        "optimal",
        "default_x86_64",
        "default_arm64",
    }
    mixed = expand(["g5", "m5.large"])
    assert mixed[0].name == "m5.large" and {t.family for t in mixed} == {"g5", "m5"}
    assert [t.vcpus for t in mixed] == sorted(t.vcpus for t in mixed)  # smallest first


def test_an_unknown_instance_type_is_refused_by_name(engine: Engine) -> None:
    request = {
        "computeEnvironmentName": "gpu",
        "type": "MANAGED",
        "computeResources": {
            "type": "EC2",
            "maxvCpus": 8,
            "instanceRole": "r",
            "instanceTypes": ["g5.xlarge", "m5.hyperlarge"],
        },
    }
    with pytest.raises(ClientError, match=r"computeResources.instanceTypes\[1\]: 'm5.hyperlarge'"):
        engine.create_compute_environment(request)
    request["computeResources"]["instanceTypes"] = ["g5", "optimal", "c7g.large"]
    engine.create_compute_environment(request)
    with pytest.raises(ClientError, match=r"instanceTypes\[0\]: 'x1'"):
        engine.update_compute_environment(
            {"computeEnvironment": "gpu", "computeResources": {"instanceTypes": ["x1"]}}
        )
