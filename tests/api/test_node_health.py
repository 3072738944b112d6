"""Every enabled node is checked (ping and /info) at a slow cadence, destinations included, against
real hstssim nodes over HTTP: what the API, the dashboard's Nodes panel and the CLI then say."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import uvicorn
from pydantic import SecretStr
from rich.console import Console

from orchestrator.api.app import create_app
from orchestrator.cli import console, main
from orchestrator.db.tables import NodeHealthRow
from orchestrator.domain.jobs import JobSpec
from orchestrator.domain.nodes import NodeRegistration
from orchestrator.domain.states import JobState
from orchestrator.services.conveyor.jobs import create_job
from orchestrator.services.events import events_of
from orchestrator.services.nodes.health import check_all
from orchestrator.services.nodes.registry import register_node
from orchestrator.services.views.jobs import show_job
from tests.api.conftest import Api
from tests.api.test_dashboard import panels, section, sign_in, verdict
from tests.services.conftest import Stack
from tests.support.processes import free_port, wait_for

SIM_VERSION = "4.4.6.sim"  # what hstssim's /info says


@pytest.fixture
def stack_settings() -> dict[str, Any]:
    return {"node_check_seconds": 2.0}  # so a round waits 1 s at most for answers


@pytest.fixture
def wide_tables(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tables one line per row, whatever the columns of the terminal running the tests."""
    monkeypatch.setattr(console, "out", Console(width=250, highlight=False, soft_wrap=True))


def node_row(html: str, name: str) -> str:
    found = re.search(rf'<tr data-node="{name}".*?</tr>', section(html, "nodes"), re.S)
    assert found, html
    return found.group(0)


@contextmanager
def serving(api: Api) -> Iterator[str]:
    """The API app over real HTTP on a loopback port, for the CLI."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(api.stack.ctx), host="127.0.0.1", port=port, log_level="error")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_for(lambda: server.started, timeout=10, what="the API to listen")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_a_destination_only_node_becomes_reachable_with_its_version_after_one_check(
    api: Api, capsys: pytest.CaptureFixture[str], wide_tables: None
) -> None:
    read = api.headers("read")
    before = api.client.get("/api/v1/nodes/node-b", headers=read).json()
    assert (before["reachable"], before["checked_at"], before["version"]) == (None, None, None)
    sign_in(api)
    assert 'data-health="unknown"' in node_row(panels(api), "node-b")

    assert check_all(api.stack.ctx) == "checked 2 node(s); all reachable"

    node = api.client.get("/api/v1/nodes/node-b", headers=read).json()
    assert node["reachable"] is True and node["version"] == SIM_VERSION, node
    assert node["checked_at"] and node["reachable_as_of"] == node["checked_at"]
    assert node["check_error"] is None and node["last_poll_at"] is None, "never polled"
    listed = {n["name"]: n for n in api.client.get("/api/v1/nodes", headers=read).json()}
    assert listed["node-b"]["version"] == SIM_VERSION
    row = node_row(panels(api), "node-b")
    assert 'data-health="idle"' in row and "reachable" in row and "unreachable" not in row
    assert f"version {SIM_VERSION}" in row

    with serving(api) as url:
        assert main(["nodes", "list", "--wide", "--api", url, "--token", api.tokens["read"]]) == 0
        listing = capsys.readouterr().out
        assert re.search(
            rf"node-b\s+\S+\s+/\s+yes\s+yes\s+{re.escape(SIM_VERSION)}\s+\d{{4}}-", listing
        )
        assert "UTC" in listing, listing
        assert main(["nodes", "show", "node-b", "--api", url, "--token", api.tokens["read"]]) == 0
        shown = capsys.readouterr().out
    assert re.search(r"reachable\s+yes", shown) and SIM_VERSION in shown, shown
    assert re.search(r"last check\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", shown), shown


def test_a_node_that_is_down_is_unreachable_with_its_error_and_no_job_moves(
    api: Api, capsys: pytest.CaptureFixture[str], wide_tables: None
) -> None:
    ctx = api.stack.ctx
    register_node(
        ctx,
        NodeRegistration.model_validate(
            {
                "name": "node-down",
                "base_url": f"http://127.0.0.1:{free_port()}",  # nothing listens there
                "auth_kind": "node_user",
                "username": "u",
                "secret": SecretStr("never-shown"),
            }
        ),
    )
    spec = {"source_node": "node-a", "source_paths": ["outgoing"], "destination_node": "node-down"}
    job_id = create_job(ctx, JobSpec.model_validate({**spec, "destination_path": "in"})).job.id
    api.stack.tasks.take()
    with ctx.sessions() as session:
        events_before = len(events_of(session, job_id))

    assert check_all(ctx) == "checked 3 node(s); not reachable: node-down"

    node = api.client.get("/api/v1/nodes/node-down", headers=api.headers("read")).json()
    assert node["reachable"] is False and node["checked_at"], node
    assert "ping failed" in node["check_error"] and "cannot reach" in node["check_error"], node
    assert "never-shown" not in str(node)
    sign_in(api)
    html = panels(api)
    row = node_row(html, "node-down")
    assert 'data-health="unreachable"' in row and "cannot reach" in row, row
    level, reasons = verdict(html)
    assert level == "bad" and "node-down: does not answer" in reasons
    with serving(api) as url:
        assert main(["nodes", "list", "--wide", "--api", url, "--token", api.tokens["read"]]) == 0
    listing = capsys.readouterr().out
    assert re.search(r"node-down\s+\S+\s+/\s+yes\s+no\s+-\s+.*cannot reach", listing), listing
    # A check is a reachability fact: the job waiting for the node is not touched.
    assert show_job(ctx, job_id).state == JobState.QUEUED
    with ctx.sessions() as session:
        assert len(events_of(session, job_id)) == events_before
    assert api.stack.tasks.take() == [], "nothing sent"


def test_a_slow_node_holds_no_other_back(stack: Stack) -> None:
    stack.admin_a.fault(kind="hang", endpoint="GET /info", seconds=5)
    started = time.monotonic()
    summary = check_all(stack.ctx)
    took = time.monotonic() - started
    assert summary == "checked 2 node(s); not reachable: node-a"
    # The round's deadline (half of ORCH_NODE_CHECK_SECONDS), not node-a's read timeout (2 s).
    assert took < 1.8, took
    with stack.ctx.sessions() as session:
        a = session.get(NodeHealthRow, stack.a_id)
        b = session.get(NodeHealthRow, stack.b_id)
        assert a is not None and not a.reachable and a.error == "no answer within 1 s"
        assert b is not None and b.reachable and b.version == SIM_VERSION
