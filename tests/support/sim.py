"""Test helpers around hstssim: a cluster of nodes, their admin API, and NodeClients for them."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, TypeVar

import httpx

from hstssim.cluster import RunningNode
from hstssim.config import NodeConfig
from orchestrator.domain.nodes import NodeConnection, Timeouts
from orchestrator.nodeapi.client import NodeClient

T = TypeVar("T")


class AdminReachable(Protocol):
    """Where a node's admin API answers: a RunningNode in this process, or one started apart."""

    @property
    def api_url(self) -> str: ...

    @property
    def admin_token(self) -> str: ...


class SimAdmin:
    """The admin API of one simulated node (its own credential, not the Node API's)."""

    def __init__(self, node: AdminReachable, *, verify: Any = True) -> None:
        self._http = httpx.Client(
            base_url=node.api_url,
            headers={"X-Admin-Token": node.admin_token},
            verify=verify,
            timeout=10,
        )

    def _ok(self, response: httpx.Response) -> Any:
        response.raise_for_status()
        return response.json() if response.content else None

    def fault(self, **fault: Any) -> Any:
        """Arm one fault (see hstssim/README.md for the kinds)."""
        return self._ok(self._http.post("/admin/faults", json=fault))

    def faults(self) -> list[dict[str, Any]]:
        """The faults still armed, each with how often it fired (one with count N that fired
        N times is gone)."""
        result: list[dict[str, Any]] = self._ok(self._http.get("/admin/faults"))
        return result

    def clear_faults(self) -> None:
        """Disarm every fault."""
        self._ok(self._http.delete("/admin/faults"))

    def counters(self) -> dict[str, Any]:
        """Request counts per endpoint and data-plane totals."""
        result: dict[str, Any] = self._ok(self._http.get("/admin/counters"))
        return result

    def reset_counters(self) -> None:
        """Zero the counters."""
        self._ok(self._http.post("/admin/counters/reset"))

    def transfers(self) -> list[dict[str, Any]]:
        """Every transfer the node holds, with its raw spec (token redacted)."""
        result: list[dict[str, Any]] = self._ok(self._http.get("/admin/transfers"))
        return result

    def settings(self, **values: Any) -> Any:
        """Change node settings at run time."""
        return self._ok(self._http.put("/admin/settings", json=values))

    def restart(self, *, keep_history: bool = False) -> list[dict[str, Any]]:
        """Start a new cursor epoch, as a node restart does (forgetting ended transfers unless
        ``keep_history``); returns the transfers it forgot, as ``transfers`` shows them."""
        answer = self._ok(self._http.post("/admin/restart", json={"keep_history": keep_history}))
        forgotten: list[dict[str, Any]] = answer["forgotten"]
        return forgotten

    def expire(self, older_than_seconds: float = 0) -> None:
        """Drop records of transfers that ended more than that long ago."""
        self._ok(self._http.post("/admin/expire", json={"older_than_seconds": older_than_seconds}))

    def foreign_transfer(self, **body: Any) -> dict[str, Any]:
        """Start another client's transfer on this node (peer, target_rate_kbps, ...)."""
        result: dict[str, Any] = self._ok(self._http.post("/admin/foreign_transfers", json=body))
        return result

    def network(self, **body: Any) -> dict[str, Any]:
        """Set link and node capacities of the whole cluster (no body: read them)."""
        if not body:
            return dict(self._ok(self._http.get("/admin/network")))
        return dict(self._ok(self._http.put("/admin/network", json=body)))

    def close(self) -> None:
        """Close the HTTP pool."""
        self._http.close()


def fresh_admins(*nodes: RunningNode) -> list[SimAdmin]:
    """Admin handles with every fault cleared, logging on, node retries at 3, counters zero."""
    admins = [SimAdmin(node) for node in nodes]
    for admin in admins:
        admin.clear_faults()
        admin.settings(activity_logging=True, max_retries=3)
        admin.reset_counters()
    return admins


def fast_configs(root: Path, *names: str) -> list[NodeConfig]:
    """Node configs for tests: short node-side retry and feed logging intervals."""
    return [
        NodeConfig(name=n, docroot=root / n, retry_delay_seconds=0.2, progress_log_interval=0.1)
        for n in names or ("node-a", "node-b")
    ]


def connection_for(
    node: RunningNode,
    *,
    auth: dict[str, Any] | None = None,
    ca_bundle: Path | None = None,
    insecure: bool = False,
    read_timeout: float = 10.0,
) -> NodeConnection:
    """A NodeConnection to a simulated node, with its node user unless told otherwise."""
    cfg = node.config
    return NodeConnection.model_validate(
        {
            "name": node.name,
            "base_url": node.api_url,
            "auth": auth or {"username": cfg.node_user, "password": cfg.node_password},
            "ca_bundle": ca_bundle,
            "insecure": insecure,
            "timeouts": Timeouts(read=read_timeout, write=read_timeout),
        }
    )


def client_for(node: RunningNode, **kwargs: Any) -> NodeClient:
    """A NodeClient for a simulated node."""
    return NodeClient.connect(connection_for(node, **kwargs))


def wait_for(check: Callable[[], T | None], *, timeout: float = 20.0, every: float = 0.05) -> T:
    """Poll ``check`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(every)


def write_tree(root: Path, files: dict[str, bytes]) -> None:
    """Create files (relative paths) under root."""
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def read_tree(root: Path) -> dict[str, bytes]:
    """Every file under root by relative path."""
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }
