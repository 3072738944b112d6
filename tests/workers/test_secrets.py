"""A node's secret and its upload tokens never leave: not in logs, task messages, Flower, the API.

The canaries are the nodes' real passwords (the stack must use them to work) plus every upload
token the destination issues (found by their AT…TA shape).
"""

from __future__ import annotations

import re
import sys
import time

import httpx
import redis
from fastapi.testclient import TestClient

from orchestrator.api.app import create_app
from orchestrator.domain.transfers import UploadRequest
from orchestrator.services.tokens import Scope, create_token
from tests.support.processes import ManagedProcess, free_port, wait_for
from tests.workers.conftest import Rig

UPLOAD_TOKEN = re.compile(rb"AT[0-9A-Za-z]{0,8}_[A-Za-z0-9_\-]{16,}TA")


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


def test_node_secrets_and_upload_tokens_stay_secret(rig: Rig) -> None:
    canaries = [rig.a.config.node_password.encode(), rig.b.config.node_password.encode()]
    sample = rig.ctx.clients.get(rig.b_id).upload_setup_one(UploadRequest(destination_root="/x"))
    assert UPLOAD_TOKEN.fullmatch(sample.token.get_secret_value().encode()), "the shape is right"
    port = free_port()
    flower = ManagedProcess(
        "flower",
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "workers",
            "flower",
            "--address=127.0.0.1",
            f"--port={port}",
            "--basic-auth=operator:flower-pw",
        ],
        rig.workdir / "flower.log",
        rig.processes.env,
    )
    rig.processes.add(flower)
    flower.start()
    flower_url = f"http://127.0.0.1:{port}"
    auth = ("operator", "flower-pw")

    def flower_up() -> bool:
        try:
            return httpx.get(f"{flower_url}/healthcheck", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    wait_for(flower_up, timeout=60, what="flower answers", watch=[flower])

    ids = rig.jobs(["sec0", "sec1"], sizes=[20_000, 500])
    queued = redis_contents(rig.redis.url)  # messages waiting for a worker, with their args
    assert b"orchestrator.dispatch" in queued
    rig.worker()
    snapshots = [queued]
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        snapshots.append(redis_contents(rig.redis.url))
        time.sleep(0.2)
    rig.assert_converged(ids)

    assert httpx.get(f"{flower_url}/api/tasks", timeout=5).status_code == 401, "Flower needs auth"
    tasks = httpx.get(f"{flower_url}/api/tasks", auth=auth, timeout=10).json()
    submits = [t for t in tasks.values() if t.get("name") == "orchestrator.submit"]
    assert submits, "Flower shows the submit tasks"
    assert any(ids[0] in (t.get("args") or "") for t in submits), "args are job ids"
    pages = [httpx.get(f"{flower_url}/api/tasks", auth=auth, timeout=10).content]
    for task_id in list(tasks)[:20]:
        pages.append(httpx.get(f"{flower_url}/task/{task_id}", auth=auth, timeout=10).content)

    with rig.ctx.sessions() as session:
        admin = create_token(session, "secrets-test", [Scope.ADMIN]).secret
        session.commit()
    with TestClient(create_app(rig.ctx)) as api:
        headers = {"Authorization": f"Bearer {admin}"}
        answers = [
            api.get("/api/v1/nodes", headers=headers).content,
            api.get(f"/api/v1/jobs/{ids[0]}", headers=headers).content,
            api.get("/api/v1/jobs", headers=headers).content,
        ]

    logs = [p.log_path.read_bytes() for p in rig.processes.started if p.log_path.exists()]
    places = {
        "logs": b"\n".join(logs),
        "broker": b"\n".join(snapshots),
        "flower": b"\n".join(pages),
        "api": b"\n".join(answers),
    }
    for where, text in places.items():
        for canary in canaries:
            assert canary not in text, f"a node password leaked into {where}"
        assert not UPLOAD_TOKEN.search(text), f"an upload token leaked into {where}"
    assert b"orchestrator.submit" in places["logs"], "the logs were really read"
