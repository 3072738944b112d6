"""Checking and applying PUT /admin/network bodies: link and node capacities in kbps."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hstssim.network import Network
from hstssim.spec import SpecError, as_int

EXAMPLE = '{"links":[{"from":"node-a","to":"node-b","capacity_kbps":100000}]}'


@dataclass(frozen=True)
class LinkChange:
    """The new capacity of the link src -> dst (0: unlimited)."""

    src: str
    dst: str
    capacity_kbps: int


@dataclass(frozen=True)
class NodeChange:
    """A node's new inbound and/or outbound capacity (None: unchanged, 0: unlimited)."""

    name: str
    inbound_kbps: int | None
    outbound_kbps: int | None


def _node(value: Any, field: str, here: str | None, knows: Callable[[str], bool]) -> str:
    """Return a node name that the network knows (here when absent and allowed)."""
    if value is None and here is not None:
        return here
    if not isinstance(value, str) or not knows(value):
        raise SpecError(f"{field} must name a node of this cluster, got {value!r}")
    return value


def parse(
    body: Any, here: str, knows: Callable[[str], bool]
) -> tuple[list[LinkChange], list[NodeChange]]:
    """Validate a whole body before anything changes; raise SpecError naming the field."""
    if not isinstance(body, dict) or set(body) - {"links", "nodes"}:
        raise SpecError(f"the body must be an object with links and/or nodes, e.g. {EXAMPLE}")
    links = body.get("links", [])
    if not isinstance(links, list):
        raise SpecError("links must be an array of {from, to, capacity_kbps}")
    link_changes = []
    for index, item in enumerate(links):
        where = f"links[{index}]"
        if not isinstance(item, dict):
            raise SpecError(f"{where} must be an object {{from, to, capacity_kbps}}")
        src = _node(item.get("from"), f"{where}.from", here, knows)
        dst = _node(item.get("to"), f"{where}.to", None, knows)
        if src == dst:
            raise SpecError(f"{where}: from and to must be different nodes")
        kbps = as_int(item.get("capacity_kbps"), f"{where}.capacity_kbps")
        link_changes.append(LinkChange(src, dst, kbps))
    nodes = body.get("nodes", {})
    if not isinstance(nodes, dict):
        raise SpecError("nodes must be an object {name: {inbound_kbps, outbound_kbps}}")
    node_changes = []
    for name, item in nodes.items():
        _node(name, f"nodes key {name!r}", None, knows)
        if not isinstance(item, dict) or not item or set(item) - {"inbound_kbps", "outbound_kbps"}:
            raise SpecError(f"nodes.{name} must be an object of inbound_kbps and/or outbound_kbps")
        values = {
            key: as_int(item[key], f"nodes.{name}.{key}") if key in item else None
            for key in ("inbound_kbps", "outbound_kbps")
        }
        node_changes.append(NodeChange(name, values["inbound_kbps"], values["outbound_kbps"]))
    return link_changes, node_changes


def apply(network: Network, links: list[LinkChange], nodes: list[NodeChange]) -> None:
    """Set every capacity given (each change re-shares the flows)."""
    for link in links:
        network.set_link(link.src, link.dst, link.capacity_kbps)
    for node in nodes:
        network.set_node(node.name, node.inbound_kbps, node.outbound_kbps)
