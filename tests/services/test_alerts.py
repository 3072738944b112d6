"""Alerts through the services, against real nodes, databases, an HTTP receiver and an SMTP server:
outbox rows written with the job's end, signed webhooks retried after a 503, mail over STARTTLS
with a login, schedule failure streaks, crash safety, racing senders, and no secret leaking."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import ssl
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import trustme
from pydantic import SecretStr
from sqlalchemy import select

from orchestrator.crypto import secret_box
from orchestrator.db.engine import make_engine, make_session_factory
from orchestrator.db.tables import AlertRow, JobEventRow
from orchestrator.domain.schedules import ScheduleSpec
from orchestrator.domain.states import JobState
from orchestrator.services.alerts.delivery import DeliverySummary, deliver_due
from orchestrator.services.context import ServiceContext, utcnow
from orchestrator.services.conveyor.control import cancel_job
from orchestrator.services.conveyor.jobs import create_job
from orchestrator.services.conveyor.polling import poll_node
from orchestrator.services.conveyor.reconcile import sweep
from orchestrator.services.events import events_of
from orchestrator.services.nodes.clients import NodeClients
from orchestrator.services.nodes.registry import update_node
from orchestrator.services.schedules.store import create_schedule
from orchestrator.services.views.overview import overview
from orchestrator.taskqueue import TaskName
from tests.services.conftest import Stack
from tests.support.alerts import (
    Mailbox,
    WebhookReceiver,
    docs_verifier,
    smtp_server,
    write_alerts_file,
)
from tests.support.processes import free_port, orchestrator_env, wait_for
from tests.support.sim import write_tree
from tests.support.stack import RecordingEnqueue, run_tasks, settle

# Canaries: neither may ever show up in a log line, an event, the outbox or a request body.
WEBHOOK_KEY = "whkey-canary-5d1e8a0c"
SMTP_PASSWORD = "smtp-canary-b37f9e42"
KEY_VARIABLE = "HSTS_TEST_WEBHOOK_KEY"
SMTP_USER = "alerts@orchestrator.test"


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    endpoint = WebhookReceiver(WEBHOOK_KEY.encode())
    yield endpoint
    endpoint.close()


@pytest.fixture
def smtp_port() -> int:
    return free_port()


@pytest.fixture
def alerts_file(tmp_path: Path) -> Path:
    return tmp_path / "alerts.yaml"


@pytest.fixture
def stack_settings(
    alerts_file: Path, receiver: WebhookReceiver, smtp_port: int, monkeypatch: pytest.MonkeyPatch
) -> dict[str, Any]:
    monkeypatch.setenv(KEY_VARIABLE, WEBHOOK_KEY)
    write_rules(alerts_file, receiver, on_job_end="always", job_end_channels=["ops"])
    return {
        "alerts_file": alerts_file,
        "alert_retry_seconds": 0.2,
        "alert_retry_max_seconds": 1.0,
        "alert_timeout_seconds": 2.0,
        "smtp_host": "127.0.0.1",
        "smtp_port": smtp_port,
        "smtp_user": SMTP_USER,
        "smtp_password": SMTP_PASSWORD,
        "smtp_from": "orchestrator@orchestrator.test",
    }


def write_rules(path: Path, receiver: WebhookReceiver, **defaults: Any) -> None:
    """The alerts file: webhook "ops" (its own key variable), mail "mail", these defaults."""
    channels = {
        "ops": {"kind": "webhook", "url": receiver.url, "secret_env": KEY_VARIABLE},
        "mail": {"kind": "email", "to": ["oncall@orchestrator.test", "lead@orchestrator.test"]},
    }
    write_alerts_file(path, channels, **defaults)


@pytest.fixture
def mailbox(tmp_path: Path, smtp_port: int, monkeypatch: pytest.MonkeyPatch) -> Iterator[Mailbox]:
    """An SMTP server that insists on STARTTLS and a login; its CA is the one clients trust."""
    ca = trustme.CA()
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_tls)
    ca_file = tmp_path / "smtp-ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_file))
    with smtp_server(smtp_port, tls=server_tls, user=SMTP_USER, password=SMTP_PASSWORD) as box:
        yield box


def alert_events(stack: Stack, job_id: str) -> list[str]:
    with stack.ctx.sessions() as session:
        return [e.message for e in events_of(session, job_id) if e.kind == "alert"]


def outbox(stack: Stack) -> list[AlertRow]:
    with stack.ctx.sessions() as session:
        return list(session.scalars(select(AlertRow).order_by(AlertRow.created_at)))


def deliver_when_due(stack: Stack) -> DeliverySummary:
    """Wait until the sweeper finds an alert due (it wakes the sender), then run the sender."""
    wait_for(lambda: sweep(stack.ctx).alerts_sent, timeout=10, what="an alert due again")
    assert (TaskName.DELIVER_ALERTS, ()) in stack.tasks.take()
    return deliver_due(stack.ctx)


def test_a_job_end_reaches_the_webhook_signed_and_once_even_after_a_503(
    stack: Stack, receiver: WebhookReceiver
) -> None:
    receiver.fail_first = 1
    write_tree(stack.root_a, {"al1/a.bin": os.urandom(30_000), "al1/b.bin": os.urandom(5_000)})
    job_id = stack.new_job("al1")

    assert settle(stack.ctx, stack.tasks, [stack.a_id])[job_id] == JobState.COMPLETED
    first = deliver_due(stack.ctx)
    assert (first.sent, first.retrying) == (0, 1)
    second = deliver_when_due(stack)
    assert (second.sent, second.retrying) == (1, 0)

    calls = receiver.all()
    assert [c.status for c in calls] == [503, 200]
    assert all(c.signed for c in calls)
    assert calls[0].delivery_id == calls[1].delivery_id, "a retry keeps its delivery id"
    assert calls[0].body == calls[1].body, "a retry sends the same body"
    (accepted,) = receiver.accepted()
    body = accepted.payload
    assert body["event"] == "job.completed" == accepted.headers["X-Orchestrator-Event"]
    assert body["delivery"] == accepted.delivery_id
    job = body["job"]
    assert (job["id"], job["state"], job["source_node"], job["destination_node"]) == (
        job_id,
        "completed",
        "node-a",
        "node-b",
    )
    assert (job["files_completed"], job["bytes_transferred"]) == (2, 35_000)
    assert job["source_paths"] == ["al1"]
    assert job_id in body["summary"]
    assert alert_events(stack, job_id) == [
        "alert to ops failed (HTTP 503), retry in 0.2 s",
        "alert sent to ops (HTTP 200)",
    ]
    (row,) = outbox(stack)
    assert (row.state, row.attempts, row.last_error) == ("sent", 2, None)
    assert deliver_due(stack.ctx).sent == 0, "nothing is sent twice"
    assert len(receiver.all()) == 2


def test_the_job_end_commit_wakes_the_sender_and_only_wanted_ends_make_alerts(
    stack: Stack, receiver: WebhookReceiver, alerts_file: Path
) -> None:
    write_rules(alerts_file, receiver, on_job_end="failure", job_end_channels=["ops"])
    canceled = stack.new_job("wk1")
    stack.tasks.take()
    cancel_job(stack.ctx, canceled)
    assert stack.tasks.take() == [], "a cancel is not a failure: no alert, no wake-up"
    assert outbox(stack) == []

    write_rules(alerts_file, receiver, on_job_end="always", job_end_channels=["ops"])
    job_id = stack.new_job("wk2")
    stack.tasks.take()
    cancel_job(stack.ctx, job_id)

    assert stack.tasks.take() == [(TaskName.DELIVER_ALERTS, ())]
    (row,) = outbox(stack)
    assert (row.job_id, row.kind, row.channel, row.state) == (job_id, "job_end", "ops", "pending")
    assert deliver_due(stack.ctx).sent == 1
    assert [d.payload["event"] for d in receiver.accepted()] == ["job.canceled"]


def test_a_failing_schedule_alerts_once_at_its_streak_and_once_when_it_recovers(
    stack: Stack, receiver: WebhookReceiver, alerts_file: Path
) -> None:
    write_rules(alerts_file, receiver, on_job_end="never", streak_channels=["ops"])
    write_tree(stack.root_a, {"st1/f.bin": os.urandom(10_000)})
    spec = ScheduleSpec.model_validate(
        {
            "id": "nightly_st1",  # "_" must not act as a LIKE wildcard
            "interval_seconds": 3600,
            "source_node": "node-a",
            "source_paths": ["st1"],
            "destination_node": "node-b",
            "destination_path": "in-st1",
            "max_attempts": 1,
            "alerts": {"failure_streak": 2},
        }
    )
    create_schedule(stack.ctx, spec)
    stack.admin_a.settings(max_retries=0)
    stack.admin_a.fault(kind="fail_transfers", error_code=5, count=3)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    runs: list[str] = []
    heard: list[list[str]] = []
    for hour in range(4):  # three failed runs, then one that completes
        job = create_job(
            stack.ctx,
            spec.job_spec("test"),
            schedule_id=spec.id,
            slot_time=start + timedelta(hours=hour),
        ).job
        runs.append(job.id)
        settle(stack.ctx, stack.tasks, [stack.a_id])
        deliver_due(stack.ctx)
        heard.append([d.payload["event"] for d in receiver.accepted()])

    assert heard == [
        [],
        ["schedule.failing"],
        ["schedule.failing"],  # the third failure is the same streak: no second alert
        ["schedule.failing", "schedule.recovered"],
    ]
    failing, recovered = (d.payload for d in receiver.accepted())
    assert failing["schedule"] == {
        "id": "nightly_st1",
        "failed_runs": 2,
        "failure_streak": 2,
        "first_failed_job": runs[0],
    }
    assert failing["job"]["id"] == runs[1]
    assert failing["job"]["state"] == "failed"
    assert failing["job"]["error_code"] == 5
    assert recovered["job"]["id"] == runs[3]
    assert recovered["schedule"]["failed_runs"] == 3
    assert alert_events(stack, runs[1]) == ["alert sent to ops (HTTP 200)"]
    assert alert_events(stack, runs[2]) == []


def test_mail_goes_through_starttls_with_a_login(
    stack: Stack, receiver: WebhookReceiver, alerts_file: Path, mailbox: Mailbox
) -> None:
    write_rules(alerts_file, receiver, on_job_end="always", job_end_channels=["mail"])
    job_id = stack.new_job("ml1")
    cancel_job(stack.ctx, job_id)

    assert deliver_due(stack.ctx).sent == 1

    (mail,) = mailbox.mails
    (row,) = outbox(stack)
    assert mail.login == SMTP_USER
    assert sorted(mail.recipients) == ["lead@orchestrator.test", "oncall@orchestrator.test"]
    assert mail.sender == "orchestrator@orchestrator.test"
    assert job_id in mail.message["Subject"]
    assert "canceled" in mail.message["Subject"]
    assert mail.message["Message-ID"] == f"<{row.id}@hsts-orchestrator>"
    assert f"job: {job_id} (canceled)" in str(mail.message.get_payload())
    assert alert_events(stack, job_id) == [
        "alert sent to mail (SMTP accepted for 2 of 2 recipient(s))"
    ]
    assert receiver.all() == []


def test_a_receiver_with_another_key_rejects_the_signature_and_the_log_says_so(
    stack: Stack, receiver: WebhookReceiver
) -> None:
    receiver.secret = b"not the key the orchestrator signs with"
    job_id = stack.new_job("sg1")
    cancel_job(stack.ctx, job_id)

    assert deliver_due(stack.ctx).retrying == 1

    (call,) = receiver.all()
    assert (call.signed, call.status) == (False, 401)
    verify = docs_verifier()
    assert verify(WEBHOOK_KEY.encode(), call.headers, call.body), "signed with the real key"
    tampered = call.body.replace(b"job.canceled", b"job.completed")
    assert not verify(WEBHOOK_KEY.encode(), call.headers, tampered)
    assert alert_events(stack, job_id) == ["alert to ops failed (HTTP 401), retry in 0.2 s"]
    (row,) = outbox(stack)
    assert (row.state, row.last_error) == ("pending", "HTTP 401")


def test_an_alert_whose_wake_up_was_lost_is_sent_by_the_sweeper_of_a_new_process(
    stack: Stack, receiver: WebhookReceiver
) -> None:
    job_id = stack.new_job("cr1")
    cancel_job(stack.ctx, job_id)
    stack.tasks.take()  # the process died after the commit: the wake-up never left

    settings = stack.ctx.settings
    engine = make_engine(settings.effective_database_url())
    sessions = make_session_factory(engine)
    tasks = RecordingEnqueue()
    restarted = ServiceContext(
        sessions=sessions,
        clients=NodeClients(sessions, secret_box(None, settings.data_dir), settings),
        settings=settings,
        enqueue=tasks,
    )
    try:
        assert sweep(restarted).alerts_sent
        assert tasks.take() == [(TaskName.DELIVER_ALERTS, ())]
        assert deliver_due(restarted).sent == 1
    finally:
        restarted.clients.close()
        engine.dispose()
    (delivery,) = receiver.accepted()
    assert delivery.payload["job"]["id"] == job_id


def test_a_sender_killed_during_the_post_leaves_the_alert_to_go_again_with_its_id(
    stack: Stack, receiver: WebhookReceiver
) -> None:
    job_id = stack.new_job("kl1")
    cancel_job(stack.ctx, job_id)
    receiver.hold = threading.Event()
    settings = stack.ctx.settings
    env = orchestrator_env(
        {
            "database_url": settings.effective_database_url(),
            "data_dir": settings.data_dir,
            "alerts_file": settings.alerts_file,
            "alert_timeout_seconds": settings.alert_timeout_seconds,
        }
    )
    code = (
        "from orchestrator.services.alerts.delivery import deliver_due\n"
        "from orchestrator.services.context import no_enqueue\n"
        "from orchestrator.bootstrap import build_context\n"
        "from orchestrator.settings import load_settings\n"
        "deliver_due(build_context(load_settings(), enqueue=no_enqueue))\n"
    )
    sender = subprocess.Popen([sys.executable, "-c", code], env=env)
    try:
        assert receiver.arrived.wait(30), "the sender never posted"
        os.kill(sender.pid, signal.SIGKILL)
        sender.wait(10)
    finally:
        if sender.poll() is None:
            sender.kill()
    receiver.hold.set()

    (row,) = outbox(stack)
    assert (row.state, row.attempts) == ("pending", 1), "claimed by the sender that died"
    assert deliver_due(stack.ctx).sent == 0, "its lease still holds"
    # Past the 50 s lease, and within the 5 minutes the receiver allows a signature's age.
    later = dataclasses.replace(stack.ctx, clock=lambda: utcnow() + timedelta(minutes=2))
    assert deliver_due(later).sent == 1

    copies = wait_for(
        lambda: receiver.accepted() if len(receiver.accepted()) == 2 else None,
        timeout=10,
        what="both copies answered",
    )
    assert copies[0].delivery_id == copies[1].delivery_id, "the receiver can drop the copy"
    assert alert_events(stack, job_id) == ["alert sent to ops (HTTP 200)"]
    assert outbox(stack)[0].attempts == 2


def test_two_senders_racing_send_each_alert_once(stack: Stack, receiver: WebhookReceiver) -> None:
    receiver.delay = 0.05
    jobs = [stack.new_job(f"rc{i}") for i in range(12)]
    for job_id in jobs:
        cancel_job(stack.ctx, job_id)
    summaries: list[DeliverySummary] = []
    start = threading.Barrier(2)

    def sender() -> None:
        start.wait()
        summaries.append(deliver_due(stack.ctx))

    threads = [threading.Thread(target=sender) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    ids = Counter(d.delivery_id for d in receiver.all())
    assert len(ids) == 12
    assert set(ids.values()) == {1}, "an alert was posted twice"
    assert sum(s.sent for s in summaries) == 12
    assert {r.state for r in outbox(stack)} == {"sent"}
    assert sorted(d.payload["job"]["id"] for d in receiver.all()) == sorted(jobs)


def test_no_secret_reaches_logs_events_the_outbox_or_a_request_body(
    stack: Stack,
    receiver: WebhookReceiver,
    alerts_file: Path,
    mailbox: Mailbox,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level("DEBUG")
    receiver.fail_first = 1
    write_rules(alerts_file, receiver, on_job_end="always", job_end_channels=["ops", "mail"])
    job_id = stack.new_job("sc1")
    cancel_job(stack.ctx, job_id)
    deliver_due(stack.ctx)
    deliver_when_due(stack)
    wrong = dataclasses.replace(
        stack.ctx,
        settings=stack.ctx.settings.model_copy(update={"smtp_password": SecretStr("wrong")}),
    )
    later = stack.new_job("sc2")
    cancel_job(wrong, later)
    deliver_due(wrong)  # the server refuses the login: a failed delivery, logged and noted

    assert [d.status for d in receiver.all()] == [503, 200, 200]
    assert len(mailbox.mails) == 1
    with stack.ctx.sessions() as session:
        events = session.scalars(select(JobEventRow)).all()
        written = [e.message + json.dumps(e.data) for e in events]
    assert any("SMTP 535" in line for line in written), written
    stored = [json.dumps(r.payload) + (r.last_error or "") for r in outbox(stack)]
    sent = [d.body.decode() + json.dumps(d.headers) for d in receiver.all()]
    mails = [m.message.as_string() for m in mailbox.mails]
    for canary in (WEBHOOK_KEY, SMTP_PASSWORD):
        assert canary not in caplog.text
        for text in (*written, *stored, *sent, *mails):
            assert canary not in text


def test_a_node_whose_poll_lag_nears_its_retention_is_alerted_once_and_shown(
    stack: Stack, receiver: WebhookReceiver, alerts_file: Path
) -> None:
    write_rules(alerts_file, receiver, node_channels=["ops"])
    update_node(stack.ctx, "node-a", {"activity_retention_seconds": 120})
    write_tree(stack.root_a, {"lag/f.bin": os.urandom(400_000)})
    job_id = stack.new_job("lag", options={"target_rate_kbps": 100})
    run_tasks(stack.ctx, stack.tasks)
    poll_node(stack.ctx, stack.a_id, owner="test-poller")
    assert not sweep(stack.ctx).at_risk
    later = utcnow() + timedelta(seconds=61)  # no good poll for over half the retention
    stack.ctx.clock = lambda: later

    first, again = sweep(stack.ctx), sweep(stack.ctx)

    assert first.at_risk == again.at_risk == ["node-a"]
    (alert,) = [row for row in outbox(stack) if row.kind == "node_lagging"]  # once per lapse
    assert alert.payload["node"]["name"] == "node-a"
    assert alert.payload["node"]["activity_retention_seconds"] == 120
    assert deliver_due(stack.ctx).sent == 1
    (delivery,) = receiver.accepted()
    assert delivery.payload["event"] == "node.lagging"
    with stack.ctx.sessions() as session:
        board = overview(session, later, poll_interval=stack.ctx.settings.poll_interval)
    (node_a,) = [n for n in board.nodes if n.name == "node-a"]
    assert node_a.health == "records at risk"
    level, reasons = board.verdict()
    assert level == "bad" and any("may expire unread" in r for r in reasons)
    cancel_job(stack.ctx, job_id)
