"""A node's words are stored and shown masked: a node that echoes the request once put the
destination's upload token (ATV7_…) into a job's reason, readable by any read token and on the
dashboard. Tokens, Basic credentials and passwords are masked in every stored reason and
every API answer, not only in the logs."""

from __future__ import annotations

import base64
import re
import uuid

from sqlalchemy import text

from orchestrator.domain.states import JobState
from tests.api.conftest import Api
from tests.support.sim import write_tree
from tests.support.stack import settle

UPLOAD_TOKEN = re.compile(r"AT[0-9A-Za-z]{0,8}_[A-Za-z0-9_\-]{16,}")
STORED = (
    "SELECT reason FROM jobs",
    "SELECT error_text FROM jobs",
    "SELECT error_text FROM attempts",
    "SELECT message FROM job_events",
    "SELECT last_error FROM node_cursors",
)


def test_an_echoing_node_leaves_no_token_or_credential_in_storage_or_answers(api: Api) -> None:
    stack = api.stack
    node = stack.a.config
    basic = base64.b64encode(f"{node.node_user}:{node.node_password}".encode()).decode()
    folder = f"echo-{uuid.uuid4().hex[:8]}"
    write_tree(stack.root_a, {f"{folder}/f.bin": b"x" * 100})
    stack.admin_a.fault(
        kind="http_error", endpoint="POST /ops/transfers", status=400, echo_request=True
    )
    created = api.client.post(
        "/api/v1/jobs",
        json={
            "source_node": "node-a",
            "source_paths": [folder],
            "destination_node": "node-b",
            "destination_path": f"in-{folder}",
        },
        headers=api.headers("submit"),
    )
    assert created.status_code == 202, created.text
    job_id = created.json()["id"]
    states = settle(stack.ctx, stack.tasks, [stack.a_id])
    assert states[job_id] == JobState.FAILED

    shown = api.client.get(f"/api/v1/jobs/{job_id}", headers=api.headers("read"))
    reason = shown.json()["reason"]
    assert "invalid request: POST /ops/transfers" in reason, "the node's echo is kept"
    assert "Authorization: Basic ***" in reason and '"token":"***"' in reason, reason
    with stack.ctx.sessions() as session:
        stored = [
            str(value)
            for query in STORED
            for (value,) in session.execute(text(query))
            if value is not None
        ]
    assert any("invalid request" in value for value in stored)
    api.client.post("/dashboard/sign-in", data={"token": api.tokens["read"]})
    places = {
        "database": "\n".join(stored),
        "job": shown.text,
        "list": api.client.get("/api/v1/jobs", headers=api.headers("read")).text,
        "dashboard": api.client.get("/dashboard/panels").text,
    }
    for where, found in places.items():
        assert not UPLOAD_TOKEN.search(found), f"an upload token in the {where}"
        assert basic not in found, f"the node's Basic credential in the {where}"
        assert node.node_password not in found, f"the node's password in the {where}"
