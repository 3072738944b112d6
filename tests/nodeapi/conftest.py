"""A pair of simulated HSTS nodes over real HTTP for the NodeClient tests."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from hstssim.cluster import RunningNode, SimCluster
from orchestrator.nodeapi.client import NodeClient
from tests.support.sim import SimAdmin, client_for, fresh_admins


@dataclass
class Pair:
    """Source node A and destination node B, with clients and admin handles."""

    a: RunningNode
    b: RunningNode
    client_a: NodeClient
    client_b: NodeClient
    admin_a: SimAdmin
    admin_b: SimAdmin

    @property
    def root_a(self) -> Path:
        return self.a.config.docroot

    @property
    def root_b(self) -> Path:
        return self.b.config.docroot


@pytest.fixture
def pair(cluster: SimCluster) -> Iterator[Pair]:
    a, b = cluster["node-a"], cluster["node-b"]
    admins = fresh_admins(a, b)
    clients = client_for(a), client_for(b)
    yield Pair(a, b, *clients, *admins)
    for client in clients:
        client.close()
    for admin in admins:
        admin.clear_faults()
        admin.close()
