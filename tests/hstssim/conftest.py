"""Fixtures for the simulator's tests: a two-node cluster in tmp dirs, and plain httpx helpers."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from hstssim.cluster import RunningNode, SimCluster
from hstssim.config import NodeConfig

TERMINAL = ("completed", "failed", "canceled")
BEARER_TOKEN = "bearer-token-of-node-a"


def node_configs(root: Path, **overrides: Any) -> list[NodeConfig]:
    """Return configs of node-a and node-b with test-friendly timings."""
    configs = []
    for name in ("node-a", "node-b"):
        config = NodeConfig(
            name=name,
            docroot=root / name,
            retry_delay_seconds=0.05,
            progress_log_interval=0.05,
            **overrides,
        )
        config.bearer_tokens = {BEARER_TOKEN: config.first_access_key[0]}
        configs.append(config)
    return configs


@pytest.fixture(scope="session")
def _stopping() -> Iterator[list[SimCluster]]:
    """Collect clusters asked to stop, and wait for them once at the end of the session
    (a node takes ~0.2 s to stop; tests need not wait for that one by one)."""
    clusters: list[SimCluster] = []
    yield clusters
    for running in clusters:
        running.stop()


@pytest.fixture
def cluster(tmp_path: Path, _stopping: list[SimCluster]) -> Iterator[SimCluster]:
    """Start node-a and node-b; ask them to stop after the test."""
    running = SimCluster.start(node_configs(tmp_path))
    yield running
    for node in running:
        node.request_stop()
    _stopping.append(running)


class Sim:
    """Test helper around a running cluster, talking plain HTTP with httpx."""

    bearer_token = BEARER_TOKEN

    def __init__(self, cluster: SimCluster) -> None:
        self.cluster = cluster
        self._clients: dict[tuple[str, str], httpx.Client] = {}

    def node(self, name: str) -> RunningNode:
        """Return a node by short name ("a" or "node-a")."""
        return self.cluster[name if name.startswith("node-") else f"node-{name}"]

    def _client(self, node: RunningNode, kind: str, **kwargs: Any) -> httpx.Client:
        """Return a cached client (making one costs ~10 ms of TLS setup in httpx)."""
        key = (node.name, kind)
        if key not in self._clients:
            self._clients[key] = httpx.Client(base_url=node.api_url, timeout=10.0, **kwargs)
        return self._clients[key]

    def client(self, name: str, auth: str = "node") -> httpx.Client:
        """Return a client with node user ("node"), access key ("key") or no credentials."""
        node = self.node(name)
        if auth == "node":
            credentials = (node.config.node_user, node.config.node_password)
            return self._client(node, auth, auth=credentials)
        if auth == "key":
            return self._client(node, auth, auth=node.config.first_access_key)
        return self._client(node, auth)

    def admin(self, name: str) -> httpx.Client:
        """Return a client of the node's admin API."""
        node = self.node(name)
        return self._client(node, "admin", headers={"X-Admin-Token": node.admin_token})

    def close(self) -> None:
        """Close every client made."""
        for client in self._clients.values():
            client.close()

    def docroot(self, name: str) -> Path:
        """Return a node's docroot."""
        return self.node(name).config.docroot

    def write(self, name: str, rel: str, data: bytes) -> Path:
        """Write a file under a node's docroot."""
        path = self.docroot(name) / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return path

    def random_file(self, name: str, rel: str, size: int) -> bytes:
        """Write size random bytes under a node's docroot and return them."""
        data = os.urandom(size)
        self.write(name, rel, data)
        return data

    def upload_spec(self, dst: str, destination: str = "/Upload", **request: Any) -> dict[str, Any]:
        """Call upload_setup on dst and return its transfer spec without null members."""
        request.setdefault("paths", [{"destination": destination}])
        answer = self.client(dst).post(
            "/files/upload_setup", json={"transfer_requests": [{"transfer_request": request}]}
        )
        assert answer.status_code == 200, answer.text
        spec = answer.json()["transfer_specs"][0]["transfer_spec"]
        return {key: value for key, value in spec.items() if value is not None}

    def start(self, src: str, spec: dict[str, Any], sources: list[str], **extra: Any) -> str:
        """POST a transfer of sources to src (the source node) and return its id."""
        body = {**spec, "paths": [{"source": s} for s in sources], **extra}
        answer = self.client(src).post("/ops/transfers", json=body)
        assert answer.status_code == 200, answer.text
        assert answer.json()["status"] == "waiting"
        return str(answer.json()["id"])

    def transfer(self, name: str, transfer_id: str) -> dict[str, Any]:
        """GET one transfer."""
        answer = self.client(name).get(f"/ops/transfers/{transfer_id}")
        assert answer.status_code == 200, answer.text
        return dict(answer.json())

    def wait(
        self,
        name: str,
        transfer_id: str,
        statuses: tuple[str, ...] = TERMINAL,
        timeout: float = 15.0,
    ) -> dict[str, Any]:
        """Poll a transfer until its status is one of statuses."""
        deadline = time.monotonic() + timeout
        client = self.client(name)
        while True:
            transfer = client.get(f"/ops/transfers/{transfer_id}").json()
            if transfer["status"] in statuses:
                return dict(transfer)
            assert time.monotonic() < deadline, f"still {transfer['status']}: {transfer}"
            time.sleep(0.02)

    def upload(
        self,
        src: str,
        dst: str,
        sources: list[str],
        destination: str = "/Upload",
        **extra: Any,
    ) -> dict[str, Any]:
        """Run a whole upload (setup on dst, POST on src) and return the ended transfer."""
        transfer_id = self.start(src, self.upload_spec(dst, destination), sources, **extra)
        return self.wait(src, transfer_id)

    def set(self, name: str, **settings: Any) -> None:
        """Change runtime settings of a node."""
        answer = self.admin(name).put("/admin/settings", json=settings)
        assert answer.status_code == 200, answer.text

    def fault(self, name: str, **fault: Any) -> dict[str, Any]:
        """Arm a fault on a node."""
        answer = self.admin(name).post("/admin/faults", json=fault)
        assert answer.status_code == 201, answer.text
        return dict(answer.json())

    def files_under(self, name: str, rel: str = "") -> list[str]:
        """Return the relative paths of every file under a node's docroot/rel."""
        base = self.docroot(name) / rel
        return sorted(p.relative_to(base).as_posix() for p in base.rglob("*") if p.is_file())


@pytest.fixture
def sim(cluster: SimCluster) -> Iterator[Sim]:
    """Return the helper for the default cluster."""
    helper = Sim(cluster)
    yield helper
    helper.close()


def poll(check: Any, timeout: float = 10.0, interval: float = 0.02) -> Any:
    """Call check() until it returns something truthy; fail after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(interval)


@pytest.fixture
def wait_for() -> Any:
    """Return the poll() helper."""
    return poll
