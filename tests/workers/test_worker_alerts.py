"""Alerts through real worker processes: a job's end reaches a webhook, signed, after a 503."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.services.events import events_of
from orchestrator.taskqueue import TaskName
from tests.support.alerts import WebhookReceiver, write_alerts_file
from tests.workers.conftest import Rig

KEY = "worker-webhook-key-3c9d"
KEY_VARIABLE = "HSTS_TEST_WORKER_WEBHOOK_KEY"


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    endpoint = WebhookReceiver(KEY.encode(), fail_first=1)
    yield endpoint
    endpoint.close()


def alert_events(rig: Rig, job_id: str, *, at_least: int) -> list[str] | None:
    """The job's alert events, once there are at least so many."""
    with rig.ctx.sessions() as session:
        events = [e.message for e in events_of(session, job_id) if e.kind == "alert"]
    return events if len(events) >= at_least else None


def test_a_job_end_alert_goes_out_from_the_worker_and_again_after_a_503(
    rig: Rig, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    rules = tmp_path / "alerts.yaml"
    channel = {"kind": "webhook", "url": receiver.url, "secret_env": KEY_VARIABLE}
    write_alerts_file(rules, {"ops": channel}, on_job_end="always", job_end_channels=["ops"])
    rig.processes.env.update(
        {"ORCH_ALERTS_FILE": str(rules), "ORCH_ALERT_RETRY_SECONDS": "0.3", KEY_VARIABLE: KEY}
    )
    worker = rig.worker()
    (job_id,) = rig.jobs(["wal"], sizes=[40_000, 0, 3_000])

    rig.assert_converged([job_id])
    # The receiver answers before the worker records the outcome: wait for the record.
    alerts = rig.wait(lambda: alert_events(rig, job_id, at_least=2), "the delivery recorded")

    calls = receiver.all()
    assert [c.status for c in calls] == [503, 200]
    assert all(c.signed for c in calls)
    assert calls[0].delivery_id == calls[1].delivery_id
    payload = calls[1].payload
    assert (payload["event"], payload["job"]["id"]) == ("job.completed", job_id)
    assert payload["job"]["files_completed"] == 3
    assert alerts == [
        "alert to ops failed (HTTP 503), retry in 0.3 s",
        "alert sent to ops (HTTP 200)",
    ]
    # Woken once after the job's commit, then by a sweep once the back-off was over.
    assert worker.received(TaskName.DELIVER_ALERTS) >= 2
    assert KEY not in worker.log_text()
