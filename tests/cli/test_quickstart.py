"""The README quickstart for real: ``hsts-orchestrator up --demo``, a job submitted and watched
with the CLI, the files byte-identical on node-b, and Ctrl-C stopping every child process.

Every test here shares one stack (module fixture); the last one stops it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import sqlite3
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import redis
from celery import Celery
from kombu.exceptions import OperationalError

from orchestrator.cli import main
from tests.cli.conftest import Result, UpStack, clean_env, cli, free_port, marked_processes
from tests.support.sim import read_tree

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def test_quickstart_job_submitted_with_the_cli_completes_byte_identical(stack: UpStack) -> None:
    # The banner printed everything a newcomer needs.
    log = stack.log()
    assert f"http://127.0.0.1:{stack.api_port}/api/v1/openapi.json" in log
    assert "/api/v1/docs" not in log, "no CDN-loaded docs page unless ORCH_API_DOCS"
    assert re.search(
        rf"Flower\s+http://127.0.0.1:{stack.flower_port}\s+user admin\s+password \S+", log
    )
    assert 'curl -H "Authorization: Bearer $ORCH_API_TOKEN"' in log
    assert set(stack.child_pids) >= {"redis", "nodes", "api", "worker", "beat", "flower"}
    # The banner waited for the children's start-up lines, and an idle stack is quiet.
    banner = log.index("hsts-orchestrator is up")
    assert all(log.index(f"[{name}]") < banner for name in ("api", "worker", "beat", "flower"))
    assert "Sending due task" not in log and "orchestrator.poll_all[" not in log

    # "Try it" as printed, in a new shell: no ORCH_* variable, no virtualenv on PATH, elsewhere.
    lines = stack.try_it()
    submit = next(line for line in lines if "jobs submit" in line)
    assert submit.endswith(
        "hsts-orchestrator jobs submit --from node-a:outgoing --to node-b:incoming --watch"
    )
    venv_bin = str(Path(sys.executable).parent)
    path = ":".join(p for p in os.environ["PATH"].split(":") if p != venv_bin)
    shell = subprocess.run(
        ["bash", "-c", " && ".join(lines[: lines.index(submit) + 1])],
        env=clean_env(PATH=path), cwd="/", capture_output=True, text=True, timeout=120,
        check=False,
    )  # fmt: skip
    result = Result(shell.returncode, shell.stdout, shell.stderr)
    assert result.code == 0, result.output
    assert re.search(r"job \S+ completed: 6 files,", result.stdout), result.output

    source = read_tree(stack.docroots["node-a"] / "outgoing")
    assert len(source) == 6
    assert read_tree(stack.docroots["node-b"] / "incoming" / "outgoing") == source

    listed = cli("jobs", "list", "--state", "completed", env=stack.client_env())
    assert listed.code == 0, listed.output
    job_id = re.search(r"job (\S+) completed", result.stdout).group(1)  # type: ignore[union-attr]
    assert job_id[:8] in listed.stdout  # a table shows short ids
    shown = cli("jobs", "show", job_id, env=stack.client_env())
    assert shown.code == 0, shown.output
    assert "completed" in shown.stdout
    assert "attempts" in shown.stdout and "events" in shown.stdout


def test_the_banner_comes_again_on_sigusr1(stack: UpStack) -> None:
    shown = stack.log().count("hsts-orchestrator is up")
    stack.process.send_signal(signal.SIGUSR1)
    deadline = time.monotonic() + 20
    while stack.log().count("hsts-orchestrator is up") == shown:
        assert time.monotonic() < deadline, stack.tail()
        time.sleep(0.1)


@pytest.fixture
def here(
    stack: UpStack, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Callable[..., Result]:
    """The CLI's main() in this process (no interpreter start) with the banner's settings."""
    monkeypatch.setenv("ORCH_API_URL", stack.api_url)
    monkeypatch.setenv("ORCH_API_TOKEN", stack.token)

    def run(*args: str) -> Result:
        code = main(list(args))
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


def test_tables_fit_80_columns_and_json_is_the_apis_answer(
    stack: UpStack, here: Callable[..., Result]
) -> None:
    deep = "outgoing/" + "a-folder-whose-name-goes-on-and-on/" * 3 + "end"
    job_id = here("jobs", "submit", "--from", f"node-a:{deep}", "--to", "node-b:in", "-q").stdout
    job_id = job_id.strip()
    narrow = cli("jobs", "list", env=stack.client_env(COLUMNS="80"))  # a pipe, 80 columns
    assert narrow.code == 0, narrow.output
    row = next(line for line in narrow.stdout.splitlines() if line.startswith(job_id[:8]))
    assert re.search(r"node-a:outg\S*…", row) and deep not in narrow.stdout, narrow.stdout
    assert max(len(line) for line in narrow.stdout.splitlines()) <= 80, narrow.stdout
    wide = here("jobs", "list", "--wide")
    (row,) = [line for line in wide.stdout.splitlines() if line.startswith(job_id)]
    assert f"node-a:{deep}" in row
    page = json.loads(here("jobs", "list", "-o", "json").stdout)
    (job,) = [item for item in page["items"] if item["id"] == job_id]
    assert job["source_paths"] == [deep] and "next_cursor" in page


def test_the_embedded_broker_needs_its_password_and_the_data_dir_is_private(
    stack: UpStack,
) -> None:
    """Any local process could send_task("orchestrator.create_job") to the embedded Redis and
    have a job run without an API token: the broker now needs a password nobody else can
    read, masked in the banner; the data dir is 0700, its secrets and database 0600."""
    log = stack.log()
    found = re.search(r"broker\s+redis://:\*\*\*@127\.0\.0\.1:(\d+)/0 \(embedded", log)
    assert found, stack.tail()
    port = int(found.group(1))
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(port=port, socket_timeout=5).ping()
    intruder = Celery(broker=f"redis://127.0.0.1:{port}/0", set_as_current=False)
    intruder.conf.broker_connection_max_retries = 0
    intruder.conf.broker_transport_options = {"max_retries": 0}
    body = {"source_node": "node-a", "source_paths": ["outgoing"],
            "destination_node": "node-b", "destination_path": "intruder"}  # fmt: skip
    with pytest.raises(OperationalError, match="Authentication required"):
        intruder.send_task("orchestrator.create_job", args=[body], queue="default", retry=False)

    password_file = stack.data_dir / "redis.password"
    password = password_file.read_text().strip()
    assert len(password) >= 32
    assert redis.Redis(port=port, password=password, socket_timeout=5).ping()
    assert password not in log, "masked in every line and banner of up"
    assert stat.S_IMODE(stack.data_dir.stat().st_mode) == 0o700
    private = [password_file, stack.data_dir / "secret.key", stack.data_dir / "redis/redis.conf"]
    private.append(stack.data_dir / "demo.env")  # the API token and the broker's password
    private += list(stack.data_dir.glob("orchestrator.db*"))  # the database, its WAL and shm
    for path in private:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def test_watch_exits_non_zero_with_the_reason_for_a_failed_job(stack: UpStack) -> None:
    env = stack.client_env()
    submitted = cli(
        "jobs", "submit", "--from", "node-a:no-such-folder", "--to", "node-b:incoming", "-q",
        env=env,
    )  # fmt: skip
    assert submitted.code == 0, submitted.output
    job_id = submitted.stdout.strip()
    watched = cli("jobs", "watch", job_id, "--interval", "0.3", env=env)
    assert watched.code == 3, watched.output  # 3: failed
    (line,) = watched.stderr.strip().splitlines()
    assert line.startswith(f"error: job {job_id} failed:")
    assert line.endswith("source path no-such-folder does not exist on node-a"), line
    assert "Traceback" not in watched.output


def test_a_node_disabled_for_maintenance_holds_jobs_and_a_paused_job_resumes(
    stack: UpStack,
) -> None:
    env = stack.client_env()
    assert cli("nodes", "disable", "node-a", env=env).code == 0
    submitted = cli(
        "jobs", "submit", "--from", "node-a:outgoing", "--to", "node-b:maint", "--rate", "1000",
        "-q", env=env,
    )  # fmt: skip
    job_id = submitted.stdout.strip()
    shown = cli("jobs", "show", job_id, env=env)
    assert "queued" in shown.stdout and "source node node-a is disabled" in shown.stdout
    first = cli("jobs", "priority", job_id, "50", env=env)
    assert first.code == 0 and f"job {job_id} queued: priority 50" in first.stdout, first.output
    enabled = cli("nodes", "enable", "node-a", env=env)
    assert enabled.code == 0 and "node node-a enabled" in enabled.stdout

    def state() -> str:
        found = re.search(r"state\s+(\w+)", cli("jobs", "show", job_id, env=env).stdout)
        return found.group(1) if found else ""

    deadline = time.monotonic() + 30
    while state() != "running":
        assert time.monotonic() < deadline, "the job did not start after the node came back"
        time.sleep(0.3)
    paused = cli("jobs", "pause", job_id, env=env)
    assert paused.code == 0 and "pause sent to the node" in paused.stdout, paused.output
    while state() != "paused":
        assert time.monotonic() < deadline + 30, "the job did not pause"
        time.sleep(0.3)
    resumed = cli("jobs", "resume", job_id, env=env)
    assert resumed.code == 0, resumed.output
    faster = cli("jobs", "rate", job_id[:8], "100000", env=env)  # a short id will do
    assert faster.code == 0 and "target rate" in faster.stdout, faster.output
    watched = cli("jobs", "watch", job_id, "--interval", "0.3", env=env)
    assert watched.code == 0, watched.output


def test_api_errors_are_one_clear_line(stack: UpStack) -> None:
    env = stack.client_env()
    # Bad input the API refuses (422): exit 2.
    for args in (
        ("--from", "node-a:../../etc", "--to", "node-b:x"),
        ("--from", "node-zzz:outgoing", "--to", "node-b:x"),
    ):
        result = cli("jobs", "submit", *args, env=env)
        assert result.code == 2, result.output
        (line,) = result.stderr.strip().splitlines()
        assert line.startswith("error: ")
        assert "Traceback" not in result.output
    assert "node-zzz" in result.stderr
    # Not found (404), wrong token (401): exit 1, and the 401 says what to check.
    missing = cli("jobs", "show", "no-such-job", env=env)
    assert missing.code == 1
    assert missing.stderr.strip().splitlines() == ["error: no job no-such-job"]
    wrong = cli("jobs", "list", env=stack.client_env(ORCH_API_TOKEN="hso_bad_token"))
    assert wrong.code == 1
    assert "ORCH_API_TOKEN" in wrong.stderr and len(wrong.stderr.strip().splitlines()) == 1


def test_token_create_prints_a_working_token_and_stores_only_its_hash(stack: UpStack) -> None:
    created = cli("token", "create", "--name", "ci", "--scope", "read", env=stack.local_env())
    assert created.code == 0, created.output
    token = created.stdout.strip()
    assert token.startswith("hso_") and "\n" not in token
    assert "shown once" in created.stderr

    env = stack.client_env(ORCH_API_TOKEN=token)
    assert cli("jobs", "list", env=env).code == 0
    refused = cli("jobs", "submit", "--from", "node-a:outgoing", "--to", "node-b:x", env=env)
    assert refused.code == 1
    assert "submit scope" in refused.stderr

    database = stack.data_dir / "orchestrator.db"
    with sqlite3.connect(database) as conn:
        rows = conn.execute("SELECT secret_hash FROM api_tokens WHERE name = 'ci'").fetchall()
    assert rows == [(hashlib.sha256(token.encode()).hexdigest(),)]
    secret_part = token.split("_", 2)[2].encode()
    for path in stack.data_dir.glob("orchestrator.db*"):  # the database, its WAL and shm
        assert secret_part not in path.read_bytes(), path


def test_nodes_commands_take_secrets_from_env_or_stdin_and_never_print_them(
    stack: UpStack,
) -> None:
    canary = "canary-Secret-4711"
    env = stack.client_env(NODE_C_PASSWORD=canary)
    node_a_url = re.search(r"^  node-a\s+(\S+)", stack.log(), re.M).group(1)  # type: ignore[union-attr]
    added = cli(
        "nodes", "add", "node-c", "--url", node_a_url, "--user", "node_admin",
        "--password-env", "NODE_C_PASSWORD", "--transfer-host", "127.0.0.1",
        env=env,
    )  # fmt: skip
    assert added.code == 0, added.output
    listed = cli("nodes", "list", env=env)
    assert listed.code == 0 and "node-c" in listed.stdout
    # The password is wrong for node-a: the check says so and exits 1.
    checked = cli("nodes", "check", "node-c", env=env)
    assert checked.code == 1
    assert checked.stderr.startswith("error: node node-c does not answer")
    ok = cli("nodes", "check", "node-a", env=env)
    assert ok.code == 0, ok.output
    assert "activity logging  on" in ok.stdout
    removed = cli("nodes", "remove", "node-c", env=env)
    assert removed.code == 0, removed.output
    again = cli(
        "nodes", "add", "node-d", "--url", node_a_url, "--user", "u", "--password-stdin",
        env=env, stdin=canary + "\n",
    )  # fmt: skip
    assert again.code == 0, again.output
    assert cli("nodes", "remove", "node-d", env=env).code == 0
    for result in (added, listed, checked, removed, again):
        assert canary not in result.output
    assert canary not in stack.log()


def test_nodes_apply_registers_and_updates_from_a_yaml_file(stack: UpStack, tmp_path: Path) -> None:
    node_a_url = re.search(r"^  node-a\s+(\S+)", stack.log(), re.M).group(1)  # type: ignore[union-attr]
    nodes_file = tmp_path / "nodes.yaml"
    nodes_file.write_text(
        "nodes:\n"
        f"  - name: node-e\n    base_url: {node_a_url}\n"
        "    auth: {username: node_admin, password_env: NODE_E_SECRET}\n"
        "    root: /outgoing\n    max_outbound: 3\n"
    )
    env = stack.client_env(NODE_E_SECRET="canary-apply-secret")
    first = cli("nodes", "apply", str(nodes_file), env=env)
    assert first.code == 0, first.output
    assert "node node-e added" in first.stdout
    again = cli("nodes", "apply", str(nodes_file), env=env)
    assert "node node-e updated" in again.stdout
    listed = cli("nodes", "list", env=env)
    assert "node-e" in listed.stdout and "/outgoing" in listed.stdout
    missing = cli("nodes", "apply", str(nodes_file), env=stack.client_env())
    assert missing.code == 2
    assert "NODE_E_SECRET is not set" in missing.stderr
    nodes_file.write_text("nodes:\n  - name: x\n")
    bad = cli("nodes", "apply", str(nodes_file), env=env)
    assert bad.code == 2
    assert "nodes.0.base_url" in bad.stderr
    assert cli("nodes", "remove", "node-e", env=env).code == 0
    for result in (first, again, listed, missing, bad):
        assert "canary-apply-secret" not in result.output


def test_schedules_commands_replicate_incrementally(
    stack: UpStack, tmp_path: Path, here: Callable[..., Result]
) -> None:
    env = stack.client_env()
    added = cli(
        "schedules", "add", "demo-mirror", "--from", "node-a:outgoing",
        "--to", "node-b:sched-mirror", "--every", "1h", "--description", "demo",
        env=env,
    )  # fmt: skip
    assert added.code == 0, added.output
    assert "schedule demo-mirror created; next run" in added.stdout
    preview = cli("schedules", "dry-run", "demo-mirror", env=env)
    assert preview.code == 0, preview.output
    assert re.search(r"new\s+6\s", preview.stdout), preview.stdout
    ran = cli("schedules", "run", "demo-mirror", "--watch", env=env)
    assert ran.code == 0, ran.output
    assert re.search(r"completed: 6 files,", ran.stdout), ran.output
    again = cli("schedules", "dry-run", "demo-mirror", env=env)
    assert re.search(r"would move\s+0\s", again.stdout), again.stdout
    second = cli("schedules", "run", "demo-mirror", "--watch", env=env)
    assert second.code == 0, second.output
    assert "up to date (6 files already there)" in second.stdout, second.output
    listed = cli("schedules", "list", env=env)
    assert re.search(r"demo-mirror\s+ok\s+every 1h", listed.stdout), listed.stdout
    runs = json.loads(here("jobs", "list", "--schedule", "demo-mirror", "-o", "json").stdout)
    assert [job["labels"]["schedule"] for job in runs["items"]] == ["demo-mirror"] * 2
    twice = here(
        "schedules", "add", "demo-mirror", "--from", "node-a:outgoing", "--to", "node-b:x",
        "--every", "1h",
    )  # fmt: skip
    assert twice.code == 1 and "schedules change demo-mirror" in twice.stderr, twice.output
    shown = cli("schedules", "show", "demo-mirror", env=env)
    assert "2 ok in a row" in shown.stdout and "manual" in shown.stdout, shown.stdout
    changed = cli(
        "schedules", "change", "demo-mirror", "--every", "30m", "--overlap", "queue", env=env
    )
    assert changed.code == 0 and "changed: every 30m" in changed.stdout, changed.output
    nothing = cli("schedules", "change", "demo-mirror", env=env)
    assert nothing.code == 2 and "nothing to change" in nothing.stderr
    assert cli("schedules", "disable", "demo-mirror", env=env).code == 0
    bad = cli(
        "schedules", "add", "broken", "--from", "node-a:x", "--to", "node-b:y",
        "--cron", "61 * * * *", env=env,
    )  # fmt: skip
    assert bad.code == 2 and "cron" in bad.stderr and "not a cron expression" in bad.stderr
    assert cli("schedules", "remove", "demo-mirror", env=env).code == 0

    replications = tmp_path / "replications.yaml"
    replications.write_text(
        "schedules:\n  - id: from-file\n    cron: '0 3 * * *'\n    source_node: node-a\n"
        "    source_paths: [outgoing]\n    destination_node: node-b\n"
        "    destination_path: nightly\n"
    )
    applied = cli("schedules", "apply", str(replications), env=stack.local_env())
    assert applied.code == 0, applied.output
    assert "1 added" in applied.stdout
    shown = cli("schedules", "show", "from-file", env=env)
    assert "config" in shown.stdout, shown.stdout
    refused = cli("schedules", "remove", "from-file", env=env)
    assert refused.code == 1 and "replications file" in refused.stderr


def test_a_second_up_on_the_same_data_dir_is_refused(stack: UpStack) -> None:
    second = cli(
        "up", "--port", str(free_port()), "--flower-port", str(free_port()),
        env=stack.local_env(),
    )  # fmt: skip
    assert second.code == 1
    assert second.stderr.strip() == (
        f"error: another `hsts-orchestrator up` (pid {stack.process.pid}) runs on "
        f"{stack.data_dir}: stop it first, or give this one its own ORCH_DATA_DIR"
    )


def test_flower_asks_for_the_printed_credentials(stack: UpStack) -> None:
    found = re.search(r"Flower\s+(\S+)\s+user (\S+)\s+password (\S+)", stack.log())
    assert found
    url, user, password = found.groups()
    assert httpx.get(url, timeout=10).status_code == 401
    assert httpx.get(url, auth=(user, "wrong"), timeout=10).status_code == 401
    assert httpx.get(url, auth=(user, password), timeout=10).status_code == 200


def test_a_worker_that_dies_is_restarted_and_jobs_go_on(stack: UpStack) -> None:
    os.killpg(stack.child_pids["worker"], signal.SIGKILL)
    deadline = time.monotonic() + 60
    while not re.search(r"^\[up\]\s+restarted worker \(restart 1 in a row\)$", stack.log(), re.M):
        assert stack.process.poll() is None, stack.tail()
        assert time.monotonic() < deadline, stack.tail()
        time.sleep(0.2)
    assert re.search(
        r"^\[up\]\s+worker exited on its own \(on SIGKILL\); restarting it in 1 s$",
        stack.log(),
        re.M,
    )
    stack.child_pids["worker"] = int(re.findall(r"started worker \(pid (\d+)\)", stack.log())[-1])
    (stack.docroots["node-a"] / "after-restart").mkdir()
    (stack.docroots["node-a"] / "after-restart" / "f.txt").write_bytes(b"still moving")

    submitted = cli(
        "jobs", "submit", "--from", "node-a:after-restart", "--to", "node-b:after-restart",
        "--watch", env=stack.client_env(),
    )  # fmt: skip

    assert submitted.code == 0, submitted.output
    moved = stack.docroots["node-b"] / "after-restart" / "after-restart" / "f.txt"
    assert moved.read_bytes() == b"still moving"


def test_jobs_from_a_file_are_queued_and_a_second_send_queues_none_twice(
    stack: UpStack, tmp_path: Path
) -> None:
    def job(n: int, **over: object) -> str:
        body = {
            "source_node": "node-a",
            "source_paths": ["outgoing"],
            "destination_node": "node-b",
            "destination_path": f"from-file-{n}",
            "idempotency_key": f"from-file-{n}",
        }
        return json.dumps({**body, **over})

    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text(
        "\n".join([job(0), "# a comment, then a blank line", "", job(1), job(2, source_node="x")])
    )
    first = cli("jobs", "submit-file", str(jobs), env=stack.client_env())
    assert first.code == 1, first.output  # one refused
    queued = re.findall(r"^line (\d+): job (\S+) queued$", first.stdout, re.M)
    assert [number for number, _ in queued] == ["1", "4"], first.output
    assert re.search(r"^line 5: refused: source_node: ", first.stderr, re.M), first.output
    assert "2 queued, 0 already known, 1 refused" in first.stdout

    again = cli("jobs", "submit-file", "-", env=stack.client_env(), stdin=jobs.read_text())
    assert again.code == 1, again.output
    known = re.findall(r"^line (\d+): job (\S+) already queued", again.stdout, re.M)
    assert known == queued, again.output
    assert "0 queued, 2 already known, 1 refused" in again.stdout

    watched = cli("jobs", "watch", queued[1][1], env=stack.client_env())
    assert watched.code == 0, watched.output
    source = read_tree(stack.docroots["node-a"] / "outgoing")
    assert read_tree(stack.docroots["node-b"] / "from-file-1" / "outgoing") == source

    # A line the API cannot take at all refuses its batch whole, said by its line.
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join([job(3), job(4, source_paths=[])]))
    refused = cli("jobs", "submit-file", str(bad), env=stack.client_env())
    assert refused.code == 2, refused.output
    assert re.search(
        r"^error: line 2: source_paths: .*\(nothing was queued\)", refused.stderr, re.M
    )
    broken = cli("jobs", "submit-file", "-", env=stack.client_env(), stdin=job(5) + "\n{")
    assert broken.code == 2, broken.output
    assert "line 2: not JSON" in broken.stderr and "nothing was sent" in broken.stderr
    listed = cli("jobs", "list", "-o", "json", env=stack.client_env())
    destinations = {j["destination_path"] for j in json.loads(listed.stdout)["items"]}
    assert not destinations & {"from-file-3", "from-file-5"}, "nothing queued from either file"


def test_ctrl_c_stops_every_child_and_exits_0(stack: UpStack) -> None:
    marker = str(stack.data_dir)
    running = marked_processes(marker)
    assert stack.process.pid in running
    for name in ("redis", "nodes", "api", "worker", "beat", "flower"):
        assert stack.child_pids[name] in running, f"{name} is not running before Ctrl-C"
    commands = " ".join(running.values())
    assert "redis-server" in commands and "hstssim" in commands and "celery" in commands

    started = time.monotonic()
    assert stack.interrupt() == 0, stack.tail()
    stopped_in = time.monotonic() - started

    # Nothing of this run survives: no redis-server, celery (worker, pool, beat, flower),
    # uvicorn or hstssim process carries the run's data dir any more.
    deadline = time.monotonic() + 10
    while (left := marked_processes(marker)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert left == {}, left
    log = stack.log()
    for name in ("redis", "nodes", "api", "worker", "beat", "flower"):
        assert re.search(rf"^\[up\]\s+{name} stopped \((exit 0|on SIGTERM)\)$", log, re.M), name
    assert "killing it" not in log  # every child stopped on SIGTERM, within the grace period
    assert log.rstrip().endswith("stopped")
    assert stopped_in < 30
