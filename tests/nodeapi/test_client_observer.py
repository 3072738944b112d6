"""The NodeClient observer: one NodeCall per request, route templates only, and never in the way."""

from __future__ import annotations

import pytest
import redis

from orchestrator.errors import NodeNotFound, NodeServerError
from orchestrator.nodeapi.client import NodeClient
from orchestrator.nodeapi.observe import NodeCall
from orchestrator.services.nodes.calls import NodeCallRecorder
from tests.nodeapi.conftest import Pair
from tests.support.processes import free_port
from tests.support.sim import connection_for


def test_each_request_is_told_once_with_its_route_template_status_and_error(pair: Pair) -> None:
    calls: list[NodeCall] = []
    with NodeClient.connect(connection_for(pair.a), observer=calls.append) as node:
        node.ping()
        with pytest.raises(NodeNotFound):
            node.get_transfer("a/b?view=full")  # an id that looks like a path and a query
        node.list_transfers(tag="orchestrator.attempt=x", count=5)
        pair.admin_a.fault(kind="http_error", endpoint="PUT /ops/transfers/{id}", status=503)
        with pytest.raises(NodeServerError):
            node.pause_transfer("t-1")

    feed_pages = pair.admin_a.counters()["requests"]["GET /ops/transfers"]
    assert [(c.method, c.route, c.status, c.error) for c in calls] == [
        ("GET", "/ping", 200, None),
        ("GET", "/ops/transfers/{id}", 404, "not_found"),
        *[("GET", "/ops/transfers", 200, None)] * feed_pages,
        ("PUT", "/ops/transfers/{id}", 503, "server_error"),
    ]
    assert {c.node for c in calls} == {"node-a"}
    assert all(c.seconds > 0 for c in calls)


def test_an_observer_that_fails_never_fails_the_call(pair: Pair) -> None:
    def broken(call: NodeCall) -> None:
        raise RuntimeError("observer bug")

    with NodeClient.connect(connection_for(pair.a), observer=broken) as node:
        node.ping()
        assert node.info().node_id


def test_redis_down_drops_the_counts_and_the_calls_go_on(pair: Pair) -> None:
    port = free_port()
    recorder = NodeCallRecorder(
        lambda: redis.Redis(port=port, socket_connect_timeout=0.2, socket_timeout=0.2),
        flush_seconds=60,
    )
    with NodeClient.connect(connection_for(pair.a), observer=recorder) as node:
        for _ in range(5):
            node.ping()
    assert pair.admin_a.counters()["requests"]["GET /ping"] == 5
    assert recorder.flush() is False, "Redis is down: the batch is dropped"
    assert recorder.flush() is True, "and not kept to grow without bound"
    recorder.close()
