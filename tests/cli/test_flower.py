"""Flower as operators use it: the one ``up --demo`` starts, behind the printed credential,
read-only, where a job's tasks are found by the job's id with results in operator words; and
the ``flower`` command, which refuses anything that would replace its credential.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

import httpx
import pytest

from orchestrator.cli import main
from tests.cli.conftest import UpStack, cli

WORK = {"orchestrator.dispatch", "orchestrator.submit", "orchestrator.poll"}


@pytest.mark.parametrize(
    ("args", "env", "says"),
    [
        (["--basic-auth=someone:else"], {}, "--basic-auth=someone:else: Flower's authentication"),
        (["--basic_auth", "x:y"], {}, "--basic_auth: Flower's authentication"),
        (["--conf=/tmp/flowerconfig.py"], {}, "--conf=/tmp/flowerconfig.py"),
        (["--password-env", "FLOWER_NOPE"], {}, "FLOWER_NOPE is not set"),
        (["--password-env", "FLOWER_PW"], {"FLOWER_PW": "a,b"}, "must hold no ','"),
        (["--user", "a:b"], {}, "--user must be non-empty"),
    ],
)
def test_the_flower_command_refuses_to_change_or_weaken_its_credential(
    args: list[str],
    env: dict[str, str],
    says: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    code = main(["flower", "--address", "0.0.0.0", *args])
    captured = capsys.readouterr()
    assert code == 2, captured
    (line,) = captured.err.strip().splitlines()
    assert line.startswith("error: ") and says in line
    assert "Flower basic auth" not in captured.out + captured.err, "no password made"


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_up_flower_shows_a_jobs_tasks_behind_the_printed_credential(up_stack: UpStack) -> None:
    stack = up_stack
    found = re.search(r"Flower\s+(\S+)\s+user (\S+)\s+password (\S+)", stack.log())
    assert found, stack.tail()
    url, user, password = found.groups()
    auth = (user, password)
    assert httpx.get(f"{url}/api/tasks", timeout=10).status_code == 401
    assert httpx.get(f"{url}/api/tasks", auth=(user, "wrong"), timeout=10).status_code == 401
    # Flower leaves these two open out of the box: here they are behind the login too.
    for path in ("/metrics", "/healthcheck"):
        assert httpx.get(f"{url}{path}", timeout=10).status_code == 401, path
        assert httpx.get(f"{url}{path}", auth=(user, "wrong"), timeout=10).status_code == 401
        assert httpx.get(f"{url}{path}", auth=auth, timeout=10).status_code == 200, path

    env = stack.client_env()
    submitted = cli(
        "jobs", "submit", "--from", "node-a:outgoing", "--to", "node-b:flower-view", "-q",
        env=env,
    )  # fmt: skip
    assert submitted.code == 0, submitted.output
    job_id = submitted.stdout.strip()
    watched = cli("jobs", "watch", job_id, "--interval", "0.3", env=env)
    assert watched.code == 0, watched.output

    # Flower's search box (and ?search=) matches a task's args and result: the job's id finds
    # the dispatch that admitted it, the submit that posted it and the poll that saw it end.
    def tasks_of_job() -> dict[str, dict[str, Any]] | None:
        answer = httpx.get(f"{url}/api/tasks", params={"search": job_id}, auth=auth, timeout=10)
        answer.raise_for_status()
        tasks: dict[str, dict[str, Any]] = answer.json()
        done = {t["name"] for t in tasks.values() if _did_the_work(t)}
        return tasks if done >= WORK else None

    tasks = _wait(tasks_of_job, "Flower shows the job's dispatch, submit and poll")
    by_name = {t["name"]: t for t in tasks.values() if _did_the_work(t)}
    submit = by_name["orchestrator.submit"]
    # Arguments as an operator reads them (the ids travel in the message, not shown here).
    assert submit["args"] == f"job {job_id[:8]} node-a:outgoing → node-b:/flower-view"
    assert f"job {job_id}: submitted as node transfer " in submit["result"]
    assert "on node-a (attempt 1)" in submit["result"]
    assert f"admitted 1 job(s): {job_id};" in by_name["orchestrator.dispatch"]["result"]
    assert by_name["orchestrator.dispatch"]["args"] in ("[]", "()")
    poll = by_name["orchestrator.poll"]
    assert poll["args"] == "poll node-a"
    assert re.search(
        r"node node-a: \d+ transfer\(s\) seen, \d+ changed, \d+ completed, 0 failed", poll["result"]
    ), poll["result"]
    assert f"job {job_id} completed" in poll["result"]
    for task in tasks.values():
        assert json.dumps(task).count(password) == 0

    # Read-only: no revoking, terminating or pool control from Flower.
    revoke = httpx.post(f"{url}/api/task/revoke/{submit['uuid']}", auth=auth, timeout=10)
    assert revoke.status_code == 403, revoke.text
    page = httpx.get(f"{url}/task/{submit['uuid']}", auth=auth, timeout=10)
    assert page.status_code == 200 and "task-revoke" not in page.text

    # Children that write to a pipe log JSON lines; up prefixes them with the child's name.
    worker_lines = [
        json.loads(line.split("] ", 1)[1].strip())
        for line in stack.log().splitlines()
        if line.startswith("[worker]") and "] {" in line
    ]
    posted = [e for e in worker_lines if e.get("job_id") == job_id]
    assert posted and all(e["role"] == "worker" and e["node"] == "node-a" for e in posted)


def _did_the_work(task: dict[str, Any]) -> bool:
    """A task that succeeded; for a submit, the one that posted (a redelivered or swept twin
    may also succeed, saying another worker has the job)."""
    if task["state"] != "SUCCESS":
        return False
    return task["name"] != "orchestrator.submit" or "submitted as" in (task.get("result") or "")


def _wait(check: Any, what: str, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        assert time.monotonic() < deadline, f"{what}: not within {timeout} s"
        time.sleep(0.5)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_flower_shows_a_failed_job_as_a_failed_task_and_no_housekeeping(up_stack: UpStack) -> None:
    stack = up_stack
    found = re.search(r"Flower\s+(\S+)\s+user (\S+)\s+password (\S+)", stack.log())
    assert found, stack.tail()
    url, user, password = found.groups()
    auth = (user, password)
    env = stack.client_env()
    submitted = cli(
        "jobs", "submit", "--from", "node-a:no-such-folder", "--to", "node-b:nowhere", "-q",
        env=env,
    )  # fmt: skip
    job_id = submitted.stdout.strip()
    assert cli("jobs", "watch", job_id, "--interval", "0.3", env=env).code != 0

    def failed() -> list[dict[str, Any]] | None:
        answer = httpx.get(f"{url}/api/tasks", params={"state": "FAILURE"}, auth=auth, timeout=10)
        answer.raise_for_status()
        tasks = [t for t in answer.json().values() if job_id[:8] in (t.get("args") or "")]
        return tasks or None

    (task,) = _wait(failed, "Flower shows the failed job as a failed task")
    assert task["name"] == "orchestrator.job_failed"
    assert task["args"] == f"job {job_id[:8]} node-a:no-such-folder → node-b:/nowhere"
    assert "failed: source path no-such-folder does not exist on node-a" in task["exception"]
    every = httpx.get(f"{url}/api/tasks", params={"limit": 10000}, auth=auth, timeout=10).json()
    names = {t["name"] for t in every.values()}
    assert names & {"orchestrator.poll_all", "orchestrator.sweep"} == set(), names
    # The submit that stopped it says why (it never reached the node, so no poll follows it;
    # the first test sees per-node polls).
    (submit,) = [
        t
        for t in every.values()
        if t["name"] == "orchestrator.submit" and job_id in (t.get("result") or "")
    ]
    assert "source path no-such-folder does not exist on node-a" in submit["result"]
    failures = [t for t in every.values() if t["state"] == "FAILURE"]
    jobs = httpx.get(
        f"{stack.api_url}/api/v1/jobs",
        params={"state": ["failed", "needs_attention"]},
        headers={"Authorization": f"Bearer {stack.token}"},
        timeout=10,
    ).json()["items"]
    assert len(failures) == len(jobs) == 1  # Flower's failed count is the failed jobs'
