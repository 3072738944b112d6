"""The links between simulated nodes: their capacities and the transfers sharing them."""

# One Network is shared by every node of a cluster (on one loop, or on loops of their own), so
# all its state sits behind one lock. A flow's new rate reaches its node through the flow's own
# deliver callback, which hops onto that node's event loop.

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

from hstssim.shares import Demand, allocate


@dataclass(eq=False)
class Flow:
    """One running session's claim on the network, from src to dst (None: unknown node)."""

    transfer_id: str
    node: str
    src: str | None
    dst: str | None
    target_kbps: int
    min_kbps: int
    policy: str
    deliver: Callable[[float | None], None]
    foreign: bool = False
    held: bool = False
    rate_kbps: float | None = field(default=None)
    delivered: bool = False

    def constraints(self) -> tuple[Hashable, ...]:
        """Return the capacities this flow crosses (its link, src's out, dst's in)."""
        found: list[Hashable] = []
        if self.src is not None and self.dst is not None:
            found.append(("link", self.src, self.dst))
        if self.src is not None:
            found.append(("out", self.src))
        if self.dst is not None:
            found.append(("in", self.dst))
        return tuple(found)

    def view(self) -> dict[str, Any]:
        """Return the flow as the admin API shows it."""
        return {
            "transfer_id": self.transfer_id,
            "node": self.node,
            "from": self.src,
            "to": self.dst,
            "rate_policy": self.policy,
            "target_rate_kbps": self.target_kbps,
            "min_rate_kbps": self.min_kbps,
            "rate_kbps": None if self.rate_kbps is None else round(self.rate_kbps, 2),
            "paused": self.held,
            "foreign": self.foreign,
        }


@dataclass(frozen=True)
class NodeAddress:
    """How a node is known on the network: its name, node id and data-plane port."""

    name: str
    node_id: str
    fasp_port: int


class Network:
    """Capacities (kbps; absent: unlimited) and flows; re-shares on every change that can move a
    share."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._nodes: dict[str, NodeAddress] = {}
        self._links: dict[tuple[str, str], int] = {}
        self._inbound: dict[str, int] = {}
        self._outbound: dict[str, int] = {}
        self._flows: dict[str, Flow] = {}

    def register(self, address: NodeAddress) -> None:
        """Make a node known by name, node id and data port."""
        with self._lock:
            self._nodes[address.name] = address

    def knows(self, name: str) -> bool:
        """Tell whether a node of this name is on the network."""
        with self._lock:
            return name in self._nodes

    def address(self, name: str) -> NodeAddress | None:
        """Return a node's address by name."""
        with self._lock:
            return self._nodes.get(name)

    def name_of(self, node_id: str) -> str | None:
        """Return the name of the node with this node id (None: not on this network)."""
        with self._lock:
            return next((a.name for a in self._nodes.values() if a.node_id == node_id), None)

    def set_link(self, src: str, dst: str, capacity_kbps: int) -> None:
        """Set the capacity of the link src -> dst (0: unlimited) and re-share."""
        with self._lock:
            _put(self._links, (src, dst), capacity_kbps)
            self._reshare()

    def set_node(
        self, name: str, inbound_kbps: int | None = None, outbound_kbps: int | None = None
    ) -> None:
        """Set a node's total inbound and/or outbound capacity (0: unlimited) and re-share."""
        with self._lock:
            if inbound_kbps is not None:
                _put(self._inbound, name, inbound_kbps)
            if outbound_kbps is not None:
                _put(self._outbound, name, outbound_kbps)
            self._reshare()

    def node_capacity(self, name: str) -> tuple[int, int]:
        """Return a node's (inbound, outbound) capacity in kbps (0: unlimited)."""
        with self._lock:
            return self._inbound.get(name, 0), self._outbound.get(name, 0)

    def join(self, flow: Flow) -> None:
        """Add a flow and re-share (only the flow itself when it crosses no capacity)."""
        with self._lock:
            self._flows[flow.transfer_id] = flow
            if self._crosses_capacity(flow):
                self._reshare()
            elif not flow.held:
                self._tell(flow, flow.target_kbps if flow.target_kbps > 0 else None)

    def leave(self, transfer_id: str) -> None:
        """Remove a flow (if present) and re-share (no one else's share changes when it crossed
        no capacity)."""
        with self._lock:
            flow = self._flows.pop(transfer_id, None)
            if flow is not None and self._crosses_capacity(flow):
                self._reshare()

    def update(self, transfer_id: str, **changes: Any) -> bool:
        """Change a flow's target, min, policy or held state and re-share; False: no flow."""
        with self._lock:
            flow = self._flows.get(transfer_id)
            if flow is None:
                return False
            for name, value in changes.items():
                setattr(flow, name, value)
            self._reshare()
            return True

    def rate_of(self, transfer_id: str) -> float | None:
        """Return the rate a flow gets now (None: unlimited or not on the network)."""
        with self._lock:
            flow = self._flows.get(transfer_id)
            return None if flow is None else flow.rate_kbps

    def snapshot(self) -> dict[str, Any]:
        """Return the capacities and flows, as the admin API shows them."""
        with self._lock:
            return {
                "links": [
                    {"from": src, "to": dst, "capacity_kbps": kbps}
                    for (src, dst), kbps in sorted(self._links.items())
                ],
                "nodes": {
                    name: {
                        "inbound_kbps": self._inbound.get(name, 0),
                        "outbound_kbps": self._outbound.get(name, 0),
                    }
                    for name in sorted(self._nodes)
                },
                "flows": [flow.view() for flow in self._flows.values()],
            }

    def _capacities(self) -> dict[Hashable, float]:
        """Return every configured capacity keyed as Flow.constraints() names them."""
        found: dict[Hashable, float] = {}
        for (src, dst), kbps in self._links.items():
            found[("link", src, dst)] = kbps
        for name, kbps in self._outbound.items():
            found[("out", name)] = kbps
        for name, kbps in self._inbound.items():
            found[("in", name)] = kbps
        return found

    def _crosses_capacity(self, flow: Flow) -> bool:
        """Tell whether a flow shares a configured capacity: others' shares then depend on it,
        whereas a flow that crosses none just gets its target (what allocate gives it)."""
        if not (self._links or self._outbound or self._inbound):
            return False
        capacities = self._capacities()
        return any(constraint in capacities for constraint in flow.constraints())

    def _tell(self, flow: Flow, rate: float | None) -> None:
        """Deliver a flow's rate if it is new to the flow."""
        if not flow.delivered or rate != flow.rate_kbps:
            flow.rate_kbps, flow.delivered = rate, True
            flow.deliver(rate)

    def _reshare(self) -> None:
        """Recompute every flow's rate and tell the flows whose rate changed."""
        running = [f for f in self._flows.values() if not f.held]
        rates = allocate(
            (
                Demand(f.transfer_id, f.constraints(), f.target_kbps, f.min_kbps, f.policy)
                for f in running
            ),
            self._capacities(),
        )
        for flow in running:
            self._tell(flow, rates[flow.transfer_id])


def _put(table: dict[Any, int], key: Any, kbps: int) -> None:
    """Store a capacity, or drop it when 0 (unlimited)."""
    if kbps > 0:
        table[key] = kbps
    else:
        table.pop(key, None)
