"""Secrets never leave: not in logs, task messages, Flower, the API.

The canaries are the nodes' real passwords (the stack must use them to work), every upload
token the destination issues (found by their AT…TA shape), an admin API token, Flower's
password and the broker's password. Every process logs at DEBUG (httpx and httpcore
included): the real worker, beat, API and Flower processes, and this process's own loggers
(the node clients, the simulated nodes). The logs must hold none of the canaries while the
jobs complete, and a node that echoes its password in an error text must be masked by the
worker's own filter.
"""

from __future__ import annotations

import io
import json
import logging
import re
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
import redis

from orchestrator.domain.states import JobState
from orchestrator.domain.transfers import UploadRequest
from orchestrator.logsetup import SECRETS, configure_logging
from orchestrator.services.tokens import Scope, create_token
from tests.support.processes import ManagedProcess, free_port, wait_for
from tests.workers.conftest import Rig

UPLOAD_TOKEN = re.compile(rb"AT[0-9A-Za-z]{0,8}_[A-Za-z0-9_\-]{16,}TA")
FLOWER_PASSWORD = "canary-flower-Pw-0451"


def redis_contents(url: str) -> bytes:
    """Every key and value in the broker, whatever its type."""
    client = redis.Redis.from_url(url)
    out = []
    for key in client.scan_iter():
        kind = client.type(key)
        if kind == b"list":
            values = client.lrange(key, 0, -1)
        elif kind == b"hash":
            values = [k + b"=" + v for k, v in client.hgetall(key).items()]
        elif kind in (b"set", b"zset"):
            values = list(client.zrange(key, 0, -1) if kind == b"zset" else client.smembers(key))
        elif kind == b"string":
            values = [client.get(key) or b""]
        else:
            values = []
        out.append(key + b" " + b" ".join(values))
    client.close()
    return b"\n".join(out)


@contextmanager
def this_process_logging(rig: Rig) -> Iterator[io.StringIO]:
    """This process's loggers (node clients, simulated nodes, httpx) at DEBUG into a buffer."""
    root = logging.getLogger()
    saved = list(root.handlers), root.level
    buffer = io.StringIO()
    settings = rig.settings.model_copy(update={"log_level": "DEBUG", "log_format": "json"})
    configure_logging(settings, "test", stream=buffer)
    try:
        yield buffer
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in saved[0]:
            root.addHandler(handler)
        root.setLevel(saved[1])
        for name in ("httpx", "httpcore"):
            logging.getLogger(name).setLevel(logging.WARNING)
        SECRETS.clear()


def start(rig: Rig, name: str, argv: list[str], env: dict[str, str] | None = None) -> str:
    """A process of the CLI on a free port, waited for; its URL."""
    port = free_port()
    process = ManagedProcess(
        name,
        [sys.executable, "-m", "orchestrator.cli", *argv, "--port", str(port)],
        rig.workdir / f"{name}.log",
        {**rig.processes.env, **(env or {})},
    )
    rig.processes.add(process)
    process.start()
    url = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        try:
            if name == "flower":  # its health check is behind its login too
                reply = httpx.get(f"{url}/healthcheck", auth=("admin", FLOWER_PASSWORD))
            else:
                reply = httpx.get(f"{url}/healthz")
        except httpx.HTTPError:
            return False
        return reply.is_success

    wait_for(answers, timeout=60, what=f"{name} answers", watch=[process])
    return url


def json_lines(text: str) -> list[dict[str, Any]]:
    """The JSON log lines of a process log (celery's banner and the rig's headers are not)."""
    found = []
    for line in text.splitlines():
        if line.startswith("{"):
            found.append(json.loads(line))
    return found


@pytest.mark.rig(settings={"log_level": "DEBUG"})
def test_node_secrets_and_upload_tokens_stay_secret(rig: Rig) -> None:
    with this_process_logging(rig) as here:
        node_passwords = [rig.a.config.node_password, rig.b.config.node_password]
        sample = rig.ctx.clients.get(rig.b_id).upload_setup_one(
            UploadRequest(destination_root="/x")
        )
        assert UPLOAD_TOKEN.fullmatch(sample.token.get_secret_value().encode()), "the shape"
        with rig.ctx.sessions() as session:
            admin = create_token(session, "secrets-test", [Scope.ADMIN]).secret
            session.commit()
        flower_url = start(
            rig,
            "flower",
            ["flower", "--password-env", "FLOWER_PW"],
            {"FLOWER_PW": FLOWER_PASSWORD},
        )
        api_url = start(rig, "api", ["api"])

        ids = rig.jobs(["sec0", "sec1"], sizes=[20_000, 500])
        queued = redis_contents(rig.redis.url)  # messages waiting for a worker, with their args
        assert b"orchestrator.dispatch" in queued
        worker = rig.worker()
        snapshots = [queued]
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            snapshots.append(redis_contents(rig.redis.url))
            time.sleep(0.2)
        rig.assert_converged(ids)

        # A node that echoes its password in an error text: the worker masks it itself.
        rig.admin_a.settings(max_retries=0)
        rig.admin_a.fault(
            kind="fail_transfers",
            error_code=5,
            error_desc=f"login refused for {rig.a.config.node_user}/{node_passwords[0]}",
        )
        (echoed,) = rig.jobs(["echo"], sizes=[100])
        rig.wait(lambda: rig.states().get(echoed) == JobState.FAILED, "the echo job fails")

        auth = ("admin", FLOWER_PASSWORD)
        assert httpx.get(f"{flower_url}/api/tasks", timeout=5).status_code == 401
        tasks = httpx.get(f"{flower_url}/api/tasks", auth=auth, timeout=10).json()
        submits = [t for t in tasks.values() if t.get("name") == "orchestrator.submit"]
        assert submits, "Flower shows the submit tasks"
        # Arguments read as the jobs they move (short id and paths), never a secret.
        assert any(f"job {ids[0][:8]} " in (t.get("args") or "") for t in submits), submits
        pages = [httpx.get(f"{flower_url}/api/tasks", auth=auth, timeout=10).content]
        broker_page = httpx.get(f"{flower_url}/broker", auth=auth, timeout=10)
        assert "127.0.0.1" in broker_page.text, "Flower shows the broker (its password masked)"
        pages.append(broker_page.content)
        for task_id in list(tasks)[:20]:
            pages.append(httpx.get(f"{flower_url}/task/{task_id}", auth=auth, timeout=10).content)

        bearer = {"Authorization": f"Bearer {admin}"}
        with httpx.Client(base_url=api_url, headers=bearer, timeout=10) as api:
            answers = [
                api.get("/api/v1/nodes").content,
                api.get(f"/api/v1/jobs/{ids[0]}").content,
                api.get("/api/v1/jobs", params={"state": "completed"}).content,
            ]
            # A client that puts its token in the URL: the access log must not keep it.
            assert api.get("/api/v1/jobs", params={"token": admin, "limit": 1}).is_success
    logs = {p.name: p.log_path.read_bytes() for p in rig.processes.started if p.log_path.exists()}
    places = {
        "logs": b"\n".join([*logs.values(), here.getvalue().encode()]),
        "broker": b"\n".join(snapshots),
        "flower": b"\n".join(pages),
        "api": b"\n".join(answers),
    }
    canaries = [*node_passwords, admin.split("_", 2)[2], FLOWER_PASSWORD, rig.redis.password]
    for where, text in places.items():
        for canary in canaries:
            assert canary.encode() not in text, f"a secret leaked into {where}"
        assert not UPLOAD_TOKEN.search(text), f"an upload token leaked into {where}"

    # The logs were really read, at DEBUG, with the context of each line.
    assert b"orchestrator.submit" in places["logs"]
    assert b"HTTP Request: POST" in here.getvalue().encode(), "httpx of this process"
    worker_lines = json_lines(worker.log_text())
    assert any(e["logger"] == "httpx" for e in worker_lines), "httpx of the worker"
    assert any(e["logger"] == "uvicorn.access" for e in json_lines(logs["api"].decode()))
    submitted = [
        e
        for e in worker_lines
        if e["logger"] == "orchestrator.services.conveyor.submission"
        and ("submitted as" in e["message"] or "already moved on" in e["message"])
    ]  # the second when a poll saw the transfer before the submit recorded it
    assert {e["job_id"] for e in submitted} == {*ids, echoed}
    assert all(
        e["task"] == "orchestrator.submit" and e["task_id"] and e["node"] == "node-a"
        and e["attempt"] == 1 and e["role"] == "worker"
        for e in submitted
    ), submitted  # fmt: skip
    echoes = [e for e in worker_lines if e.get("job_id") == echoed and " failed " in e["message"]]
    assert echoes, "the failure was logged"
    for line in echoes:
        assert f"login refused for {rig.a.config.node_user}/***" in line["message"], line
        assert line["node"] == "node-a" and line["task"] == "orchestrator.poll", line
