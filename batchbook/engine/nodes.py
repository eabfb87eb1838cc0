"""Multi-node parallel jobs: node ranges checked, and what each node runs and holds.

A ``multinode`` job definition's ``nodeProperties`` gives ``numNodes``, ``mainNode`` and
``nodeRangeProperties``, each with ``targetNodes`` (``a:b`` inclusive, ``a:``, ``:b`` or
``a``) and a container; the ranges must cover every node exactly once. SubmitJob's
``nodeOverrides`` may change ``numNodes`` and override containers by range. The result is a
:class:`NodeLayout`: consecutive nodes that run the same container form a group.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final

from batchbook.engine.resources import Resources, job_resources
from batchbook.errors import ClientError
from batchbook.vocabulary import check_range

MAX_NODES: Final = 1000  # nodes per job; AWS's default quota
_TARGET = re.compile(r"^(\d*)(:?)(\d*)$")


@dataclass(frozen=True)
class NodeGroup:
    first: int
    last: int  # inclusive
    container: dict[str, Any]  # the range's containerProperties
    overrides: dict[str, Any]  # the submission's containerOverrides for these nodes
    resources: Resources


@dataclass(frozen=True)
class NodeLayout:
    num_nodes: int
    main_node: int
    groups: tuple[NodeGroup, ...]

    def group(self, node: int) -> NodeGroup:
        return next(g for g in self.groups if g.first <= node <= g.last)

    def to_record(self) -> dict[str, Any]:
        return {
            "numNodes": self.num_nodes,
            "mainNode": self.main_node,
            "groups": [
                [
                    g.first,
                    g.last,
                    g.container,
                    g.overrides,
                    [g.resources.vcpu_milli, g.resources.memory_mib, g.resources.gpus],
                ]
                for g in self.groups
            ],
        }

    @classmethod
    def from_record(cls, rec: dict[str, Any]) -> NodeLayout:
        return cls(
            rec["numNodes"],
            rec["mainNode"],
            tuple(NodeGroup(a, b, c, o, Resources(*r)) for a, b, c, o, r in rec["groups"]),
        )


def target_range(text: str, num_nodes: int, where: str) -> tuple[int, int]:
    """``targetNodes`` as (first, last), inclusive, within ``num_nodes`` nodes."""
    m = _TARGET.match(text or "")
    if not m or not (m.group(1) or m.group(3)):
        raise ClientError(f"{where}: {text!r:.40} is not a node range; use a:b, a:, :b or a")
    low = int(m.group(1)) if m.group(1) else 0
    high = int(m.group(3)) if m.group(3) else (num_nodes - 1 if m.group(2) else low)
    if low > high or high >= num_nodes:
        raise ClientError(
            f"{where}: {text!r} does not lie within nodes 0 to {num_nodes - 1} (numNodes {num_nodes})"
        )
    return low, high


def check_node_properties(props: dict[str, Any] | None, fargate: bool) -> None:
    """What RegisterJobDefinition refuses in a multinode job definition."""
    if not props:
        raise ClientError("nodeProperties: required for a multinode job definition")
    if fargate:
        raise ClientError(
            "platformCapabilities: multi-node parallel jobs do not run on Fargate; use EC2"
        )
    node_layout(props, None)


def node_layout(props: dict[str, Any], overrides: dict[str, Any] | None) -> NodeLayout:
    """Each node's container and resources: the definition's ranges, the overrides over them."""
    overrides = overrides or {}
    num_nodes = overrides.get("numNodes", props["numNodes"])
    field = "nodeOverrides.numNodes" if "numNodes" in overrides else "nodeProperties.numNodes"
    check_range(field, num_nodes, 1, MAX_NODES)
    main = props["mainNode"]
    if not 0 <= main < num_nodes:
        raise ClientError(
            f"nodeProperties.mainNode: {main} is not one of the nodes 0 to {num_nodes - 1}"
        )
    ranges = props["nodeRangeProperties"]
    owner = _cover(
        [r["targetNodes"] for r in ranges], num_nodes, "nodeProperties.nodeRangeProperties"
    )
    if any(o is None for o in owner):
        missing = owner.index(None)
        raise ClientError(
            f"nodeProperties.nodeRangeProperties: node {missing} is in no range; the ranges "
            f"must cover nodes 0 to {num_nodes - 1} exactly once"
        )
    changes = overrides.get("nodePropertyOverrides") or []
    override_of = _cover(
        [o["targetNodes"] for o in changes], num_nodes, "nodeOverrides.nodePropertyOverrides"
    )
    groups: list[NodeGroup] = []
    last_key: tuple[int | None, int | None] | None = None
    for node in range(num_nodes):
        key = (owner[node], override_of[node])
        if groups and node == groups[-1].last + 1 and key == last_key:
            groups[-1] = NodeGroup(
                groups[-1].first,
                node,
                groups[-1].container,
                groups[-1].overrides,
                groups[-1].resources,
            )
            continue
        last_key = key
        r = owner[node]
        assert r is not None
        where = f"nodeProperties.nodeRangeProperties[{r}].container"
        container = ranges[r].get("container")
        if not container:
            raise ClientError(f"{where}: required (the local engine runs containers' commands)")
        if not container.get("image"):
            raise ClientError(f"{where}.image: required")
        chosen = override_of[node]
        change: dict[str, Any] = {}
        if chosen is not None:
            change = changes[chosen].get("containerOverrides") or {}
        groups.append(NodeGroup(node, node, container, change, job_resources(container, change)))
    return NodeLayout(num_nodes, main, tuple(groups))


def _cover(targets: list[str], num_nodes: int, field: str) -> list[int | None]:
    """For each node, the index of the one range among ``targets`` that holds it."""
    owner: list[int | None] = [None] * num_nodes
    for i, text in enumerate(targets):
        low, high = target_range(text, num_nodes, f"{field}[{i}].targetNodes")
        for node in range(low, high + 1):
            if owner[node] is not None:
                raise ClientError(
                    f"{field}[{i}].targetNodes: node {node} is already in {field}[{owner[node]}]; "
                    "each node may be in one range only"
                )
            owner[node] = i
    return owner
