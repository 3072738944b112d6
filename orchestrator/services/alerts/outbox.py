"""Alert decisions: outbox rows written in the job's own unit of work.

``transitions.move`` calls ``on_job_end`` whenever a job reaches an end state: the alert rows
commit (or roll back) with the state change, so a crash can neither lose nor duplicate the
decision. The unit wakes the sender after its commit; the sweeper finds whatever that missed.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session, aliased

from orchestrator.db.engine import upsert
from orchestrator.db.tables import AlertRow, JobRow, NodeRow, ScheduleRow
from orchestrator.domain import units
from orchestrator.domain.alerts import JOB_ENDS, AlertsConfig, job_end_channels, streak_channels
from orchestrator.domain.nodes import NodePoll
from orchestrator.domain.schedules import ScheduleAlerts
from orchestrator.domain.states import FAILED_ENDS, JobState
from orchestrator.services.alerts.rules import alert_rules
from orchestrator.services.context import UnitOfWork
from orchestrator.taskqueue import TaskName

log = logging.getLogger(__name__)

JOB_END = "job_end"
FAILING = "schedule_failing"
RECOVERED = "schedule_recovered"
NODE_LAGGING = "node_lagging"


# -- deciding ------------------------------------------------------------------------------


def on_job_end(work: UnitOfWork, job_id: str, target: JobState, at: datetime) -> None:
    """Queue the alerts a job's move to ``target`` calls for (same unit; the caller commits)."""
    if target not in JOB_ENDS:
        return
    config = alert_rules(work.ctx.settings).config()
    if not config.channels:  # nowhere to send anything: spare the job's commit the queries
        return
    session = work.session
    schedule_id = session.scalar(select(JobRow.schedule_id).where(JobRow.id == job_id))
    schedule = _schedule_alerts(session, schedule_id)
    rows: list[tuple[str, str, dict[str, Any], str | None]] = []  # kind, channel, extra, key
    for channel in job_end_channels(config, schedule, target):
        rows.append((JOB_END, channel, {}, None))
    if schedule is not None and schedule_id is not None:
        rows += _streak_alerts(session, config, schedule, schedule_id, job_id, target)
    if not rows:
        return
    job = _job_summary(session, job_id)
    for kind, channel, extra, key in rows:
        alert_id = str(uuid.uuid4())
        payload = {
            "event": _event_name(kind, target),
            "delivery": alert_id,
            "occurred_at": at.isoformat(),
            "summary": _summary_line(kind, job, extra),
            "job": job,
            **extra,
        }
        _insert(session, alert_id, kind, job_id, schedule_id, channel, payload, key, at)
    enqueue = work.ctx.enqueue
    work.after_commit(TaskName.DELIVER_ALERTS, lambda: enqueue(TaskName.DELIVER_ALERTS))


def on_node_lagging(work: UnitOfWork, poll: NodePoll, at: datetime) -> int:
    """Alert once per episode (a last good poll) that a node's records may expire unread.

    Returns how many alerts were queued (0 when no channel is set or this episode was told).
    """
    config = alert_rules(work.ctx.settings).config()
    channels = config.defaults.node_channels
    if not channels:
        return 0
    episode = poll.last_success_at.isoformat() if poll.last_success_at else "never"
    lag, retention = round(poll.lag_seconds), poll.activity_retention_seconds
    summary = (
        f"node {poll.name}: no good poll for {lag} s while {poll.open_transfers} transfer(s) "
        f"are open; it keeps records for {retention} s, so their end states may expire unread"
    )
    for channel in channels:
        alert_id = str(uuid.uuid4())
        payload = {
            "event": "node.lagging",
            "delivery": alert_id,
            "occurred_at": at.isoformat(),
            "summary": summary,
            "node": {
                "name": poll.name,
                "poll_lag_seconds": lag,
                "activity_retention_seconds": retention,
                "open_transfers": poll.open_transfers,
                "last_success_at": poll.last_success_at.isoformat()
                if poll.last_success_at
                else None,
            },
        }
        key = f"{NODE_LAGGING}:{poll.node_id}:{episode}:{channel}"
        _insert(work.session, alert_id, NODE_LAGGING, None, None, channel, payload, key, at)
    enqueue = work.ctx.enqueue
    work.after_commit(TaskName.DELIVER_ALERTS, lambda: enqueue(TaskName.DELIVER_ALERTS))
    return len(channels)


def _schedule_alerts(session: Session, schedule_id: str | None) -> ScheduleAlerts | None:
    if schedule_id is None:
        return None
    stored = session.scalar(select(ScheduleRow.alerts).where(ScheduleRow.id == schedule_id))
    if stored is None:  # the schedule was deleted; its runs still end
        return None
    try:
        return ScheduleAlerts.model_validate(stored)
    except ValidationError:
        log.warning("schedule %s has unreadable alert settings; using defaults", schedule_id)
        return ScheduleAlerts()


def _streak_alerts(
    session: Session,
    config: AlertsConfig,
    schedule: ScheduleAlerts,
    schedule_id: str,
    job_id: str,
    target: JobState,
) -> list[tuple[str, str, dict[str, Any], str | None]]:
    """A failing alert when the run of failures reaches the threshold (once per streak);
    a recovered alert when a run succeeds after a streak that was alerted."""
    if target in FAILED_ENDS:
        length, first = _failures_since_last_success(session, schedule_id, before=None)
        if first is None or length < schedule.failure_streak:
            return []
        extra = {"schedule": _streak_info(schedule_id, length, schedule, first)}
        return [
            (FAILING, channel, extra, f"{FAILING}:{schedule_id}:{first}:{channel}")
            for channel in streak_channels(config, schedule)
        ]
    if target is not JobState.COMPLETED:
        return []
    created = session.scalar(select(JobRow.created_at).where(JobRow.id == job_id))
    length, first = _failures_since_last_success(session, schedule_id, before=created)
    if first is None:
        return []
    alerted = session.scalars(
        select(AlertRow.channel)
        .where(
            AlertRow.kind == FAILING,
            AlertRow.schedule_id == schedule_id,
            AlertRow.dedupe_key.startswith(f"{FAILING}:{schedule_id}:{first}:", autoescape=True),
        )
        .distinct()
    ).all()
    extra = {"schedule": _streak_info(schedule_id, length, schedule, first)}
    return [
        (RECOVERED, channel, extra, f"{RECOVERED}:{schedule_id}:{first}:{channel}")
        for channel in sorted(alerted)
    ]


def _failures_since_last_success(
    session: Session, schedule_id: str, *, before: datetime | None
) -> tuple[int, str | None]:
    """How many of the schedule's runs failed since its last completed one, and the first.

    Runs are ordered by creation; runs still going are not counted. ``before`` limits the
    look to runs created earlier (the streak a completing run ends).
    """
    scope = [JobRow.schedule_id == schedule_id]
    if before is not None:
        scope.append(JobRow.created_at < before)
    last_ok = session.scalar(
        select(func.max(JobRow.created_at)).where(*scope, JobRow.state == JobState.COMPLETED)
    )
    failed = [*scope, JobRow.state.in_([s.value for s in FAILED_ENDS])]
    if last_ok is not None:
        failed.append(JobRow.created_at > last_ok)
    length = session.scalar(select(func.count()).select_from(JobRow).where(*failed)) or 0
    first = session.scalar(
        select(JobRow.id).where(*failed).order_by(JobRow.created_at, JobRow.id).limit(1)
    )
    return int(length), first


def _streak_info(
    schedule_id: str, length: int, schedule: ScheduleAlerts, first: str
) -> dict[str, Any]:
    return {
        "id": schedule_id,
        "failed_runs": length,
        "failure_streak": schedule.failure_streak,
        "first_failed_job": first,
    }


_SUMMARY_COLUMNS = (
    "id", "state", "reason", "source_paths", "destination_path", "bytes_transferred",
    "bytes_expected", "files_completed", "files_expected", "files_skipped", "attempt_count",
    "error_code",
    "error_text", "schedule_id", "slot_time", "labels", "created_at", "finished_at",
)  # fmt: skip


def _job_summary(session: Session, job_id: str) -> dict[str, Any]:
    """What a receiver needs to know about the job.

    Columns, not the ORM object: the move updated the row behind the session's back, and
    refreshing the object could throw away changes a caller has not flushed yet.
    """
    source, destination = aliased(NodeRow), aliased(NodeRow)
    row = session.execute(
        select(
            *(getattr(JobRow, name) for name in _SUMMARY_COLUMNS),
            source.name.label("source_node"),
            destination.name.label("destination_node"),
        )
        .join(source, source.id == JobRow.source_node_id)
        .join(destination, destination.id == JobRow.destination_node_id)
        .where(JobRow.id == job_id)
    ).one()
    job = row._asdict()
    job["attempts"] = job.pop("attempt_count")
    job["source_paths"] = [path.get("source") for path in job["source_paths"]]
    job["labels"] = dict(job["labels"] or {})
    for key in ("slot_time", "created_at", "finished_at"):
        job[key] = _iso(job[key])
    return job


def _iso(at: datetime | None) -> str | None:
    return at.isoformat() if at is not None else None


def _event_name(kind: str, target: JobState) -> str:
    if kind == JOB_END:
        return f"job.{target.value}"
    return "schedule.failing" if kind == FAILING else "schedule.recovered"


def _summary_line(kind: str, job: dict[str, Any], extra: dict[str, Any]) -> str:
    """One sentence for a chat message or a mail subject."""
    if kind == FAILING:
        streak = extra["schedule"]
        return (
            f"schedule {streak['id']}: {streak['failed_runs']} run(s) in a row failed "
            f"(threshold {streak['failure_streak']}); latest job {job['id']}"
        )
    if kind == RECOVERED:
        return f"schedule {extra['schedule']['id']}: job {job['id']} completed, failures over"
    moved = units.moved(
        job["files_completed"], job["bytes_transferred"], job.get("files_skipped") or 0
    )
    text = (
        f"job {job['id']} {job['state'].replace('_', ' ')}: {job['source_node']} → "
        f"{job['destination_node']}:{job['destination_path']}, {moved}"
    )
    if job["state"] != JobState.COMPLETED and (job["reason"] or job["error_text"]):
        text += f" ({job['reason'] or job['error_text']})"
    return text


def _insert(
    session: Session,
    alert_id: str,
    kind: str,
    job_id: str | None,
    schedule_id: str | None,
    channel: str,
    payload: dict[str, Any],
    dedupe_key: str | None,
    at: datetime,
) -> None:
    values = {
        "id": alert_id,
        "kind": kind,
        "job_id": job_id,
        "schedule_id": schedule_id,
        "channel": channel,
        "dedupe_key": dedupe_key,
        "payload": payload,
        "state": "pending",
        "attempts": 0,
        "next_attempt_at": at,
        "created_at": at,
    }
    insert = upsert(session)
    # A once-only alert that exists already (a second failure past the threshold) is skipped.
    session.execute(
        insert(AlertRow).values(**values).on_conflict_do_nothing(index_elements=["dedupe_key"])
    )


def on_operator_event(
    work: UnitOfWork,
    kind: str,
    event: str,
    summary: str,
    details: dict[str, Any],
    *,
    episode: str,
    at: datetime,
) -> int:
    """Alert the node channels once per ``episode`` (a breaker opening, a node disabled).

    Returns how many alerts were queued (0 when no channel is set or the episode was told).
    """
    channels = alert_rules(work.ctx.settings).config().defaults.node_channels
    for channel in channels:
        alert_id = str(uuid.uuid4())
        payload = {
            "event": event,
            "delivery": alert_id,
            "occurred_at": at.isoformat(),
            "summary": summary,
            **details,
        }
        key = f"{kind}:{episode}:{channel}"
        _insert(work.session, alert_id, kind, None, None, channel, payload, key, at)
    if channels:
        enqueue = work.ctx.enqueue
        work.after_commit(TaskName.DELIVER_ALERTS, lambda: enqueue(TaskName.DELIVER_ALERTS))
    return len(channels)
