"""Sending queued alerts: signed webhook posts and mail, back-off, each outcome in the job's log.

A sender claims an alert with a compare-and-set that pushes ``next_attempt_at`` past its own
deadline and bumps ``attempts``; its outcome is written only if ``attempts`` is still its own.
Two senders therefore never hold one alert at once, and one that died lets the alert come due
again after the lease. A receiver may still see an alert twice (the sender died after the
POST and before writing the outcome): the delivery id header lets it drop the second copy.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import smtplib
import ssl
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from typing import Any

import httpx
from sqlalchemy import delete, exists, select, update

from orchestrator.db.engine import rowcount
from orchestrator.db.tables import AlertRow
from orchestrator.domain import units
from orchestrator.domain.alerts import AlertsConfig, EmailChannel, WebhookChannel
from orchestrator.services.alerts.rules import alert_rules
from orchestrator.services.context import ServiceContext
from orchestrator.services.events import record
from orchestrator.settings import Settings, secret_from_environment

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Orchestrator-Signature"
TIMESTAMP_HEADER = "X-Orchestrator-Timestamp"
DELIVERY_HEADER = "X-Orchestrator-Delivery"
EVENT_HEADER = "X-Orchestrator-Event"
BATCH = 50
BUDGET_SECONDS = 60.0  # stop claiming after this; the task's soft limit is 120 s
RETENTION = timedelta(days=30)  # sent and given-up alerts are deleted after this


@dataclass
class DeliverySummary:
    """What one delivery run did."""

    sent: int = 0
    retrying: int = 0
    failed: int = 0

    def __str__(self) -> str:
        return (
            f"{self.sent} alert(s) sent, {self.retrying} to try again later, {self.failed} given up"
        )


@dataclass(frozen=True)
class Claimed:
    """An alert this sender holds, as claimed (``attempts`` fences the outcome write)."""

    id: str
    channel: str
    job_id: str | None
    payload: dict[str, Any]
    attempts: int


@dataclass(frozen=True)
class Outcome:
    """How one delivery went, in words for the job's event log (never a secret)."""

    ok: bool
    detail: str


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    """The signature header value: HMAC-SHA256 over ``timestamp`` + "." + body, in hex."""
    digest = hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def alerts_due(ctx: ServiceContext) -> bool:
    """Whether any alert waits to be sent now (the sweeper's question)."""
    with ctx.sessions() as session:
        return bool(session.scalar(select(exists().where(*_due_now(ctx.now())))))


def deliver_due(ctx: ServiceContext) -> DeliverySummary:
    """Send every alert that is due (within a time budget); the sweeper wakes the rest."""
    summary = DeliverySummary()
    deadline = time.monotonic() + BUDGET_SECONDS
    config = alert_rules(ctx.settings).config()
    timeout = ctx.settings.alert_timeout_seconds
    with httpx.Client(timeout=timeout, follow_redirects=False) as http:
        while time.monotonic() < deadline:
            with ctx.sessions() as session:
                ids = session.scalars(
                    select(AlertRow.id)
                    .where(*_due_now(ctx.now()))
                    .order_by(AlertRow.next_attempt_at)
                    .limit(BATCH)
                ).all()
            for alert_id in ids:
                if time.monotonic() >= deadline:
                    break
                claimed = _claim(ctx, alert_id)
                if claimed is None:
                    continue  # another sender has it
                outcome = _send(ctx, config, http, claimed)
                _finish(ctx, claimed, outcome, summary)
            if len(ids) < BATCH:
                break
    _prune(ctx)
    return summary


def _due_now(now: datetime) -> list[Any]:
    return [AlertRow.state == "pending", AlertRow.next_attempt_at <= now]


def _lease(settings: Settings) -> timedelta:
    # Longer than any one delivery can take: httpx and smtplib time out per network step.
    return timedelta(seconds=10 * settings.alert_timeout_seconds + 30)


def _claim(ctx: ServiceContext, alert_id: str) -> Claimed | None:
    now = ctx.now()
    with ctx.sessions() as session:
        result = session.execute(
            update(AlertRow)
            .where(AlertRow.id == alert_id, *_due_now(now))
            .values(attempts=AlertRow.attempts + 1, next_attempt_at=now + _lease(ctx.settings))
            .execution_options(synchronize_session=False)
        )
        if rowcount(result) != 1:
            session.rollback()
            return None
        row = session.execute(
            select(AlertRow.channel, AlertRow.job_id, AlertRow.payload, AlertRow.attempts).where(
                AlertRow.id == alert_id
            )
        ).one()
        session.commit()
    return Claimed(alert_id, row.channel, row.job_id, dict(row.payload), row.attempts)


def _send(
    ctx: ServiceContext, config: AlertsConfig, http: httpx.Client, claimed: Claimed
) -> Outcome:
    channel = config.channels.get(claimed.channel)
    if channel is None:
        return Outcome(False, f"no channel named {claimed.channel} in the alerts file")
    if isinstance(channel, WebhookChannel):
        return _post(ctx, channel, http, claimed)
    return _mail(ctx.settings, channel, claimed)


def _finish(
    ctx: ServiceContext, claimed: Claimed, outcome: Outcome, summary: DeliverySummary
) -> None:
    now = ctx.now()
    settings = ctx.settings
    values: dict[str, Any] = {"last_error": None if outcome.ok else outcome.detail[:2000]}
    if outcome.ok:
        values |= {"state": "sent", "sent_at": now, "next_attempt_at": now}
        message = f"alert sent to {claimed.channel} ({outcome.detail})"
    elif claimed.attempts >= settings.alert_max_attempts:
        values |= {"state": "failed", "next_attempt_at": now}
        message = (
            f"alert to {claimed.channel} failed ({outcome.detail}); given up after "
            f"{claimed.attempts} attempt(s)"
        )
    else:
        wait = min(
            settings.alert_retry_seconds * 2 ** (claimed.attempts - 1),
            settings.alert_retry_max_seconds,
        )
        values["next_attempt_at"] = now + timedelta(seconds=wait)
        message = f"alert to {claimed.channel} failed ({outcome.detail}), retry in {wait:g} s"
    with ctx.sessions() as session:
        result = session.execute(
            update(AlertRow)
            .where(
                AlertRow.id == claimed.id,
                AlertRow.state == "pending",
                AlertRow.attempts == claimed.attempts,
            )
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        if rowcount(result) != 1:  # our lease ran out and another sender took over
            session.rollback()
            return
        if claimed.job_id is not None:
            data = {
                "alert": claimed.id,
                "channel": claimed.channel,
                "event": claimed.payload.get("event"),
                "attempt": claimed.attempts,
                "outcome": "sent" if outcome.ok else values.get("state", "retry"),
            }
            record(session, claimed.job_id, "alert", message, at=now, data=data)
        session.commit()
    log.info("alert %s: %s", claimed.id, message)
    if outcome.ok:
        summary.sent += 1
    elif values.get("state") == "failed":
        summary.failed += 1
    else:
        summary.retrying += 1


def _prune(ctx: ServiceContext) -> None:
    cutoff = ctx.now() - RETENTION
    with ctx.sessions() as session:
        session.execute(
            delete(AlertRow).where(
                AlertRow.state.in_(("sent", "failed")), AlertRow.next_attempt_at < cutoff
            )
        )
        session.commit()


# -- channels --------------------------------------------------------------------------------


def webhook_secret(channel: WebhookChannel, settings: Settings) -> bytes | None:
    """The channel's signing key: its own environment variable, else the global setting."""
    secret = (
        secret_from_environment(channel.secret_env)
        if channel.secret_env
        else settings.alerts_webhook_secret
    )
    return secret.get_secret_value().encode() if secret is not None else None


def _post(
    ctx: ServiceContext, channel: WebhookChannel, http: httpx.Client, claimed: Claimed
) -> Outcome:
    secret = webhook_secret(channel, ctx.settings)
    if secret is None:
        holder = channel.secret_env or "ORCH_ALERTS_WEBHOOK_SECRET"
        return Outcome(False, f"no signing key: {holder} is not set")
    body = json.dumps(claimed.payload, sort_keys=True, separators=(",", ":")).encode()
    timestamp = str(int(ctx.now().timestamp()))
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "hsts-orchestrator-alerts",
        SIGNATURE_HEADER: sign(secret, timestamp, body),
        TIMESTAMP_HEADER: timestamp,
        DELIVERY_HEADER: claimed.id,
        EVENT_HEADER: str(claimed.payload.get("event", "")),
    }
    try:
        response = http.post(channel.url, content=body, headers=headers)
    except httpx.TimeoutException:
        return Outcome(False, "timed out")
    except httpx.HTTPError as exc:
        return Outcome(False, f"no answer: {type(exc).__name__}")
    return Outcome(response.is_success, f"HTTP {response.status_code}")


def _mail(settings: Settings, channel: EmailChannel, claimed: Claimed) -> Outcome:
    if not settings.smtp_host:
        return Outcome(False, "no mail server: ORCH_SMTP_HOST is not set")
    message = _message(settings, channel, claimed)
    try:
        with smtplib.SMTP(
            settings.smtp_host, settings.smtp_port, timeout=settings.alert_timeout_seconds
        ) as smtp:
            if settings.smtp_starttls:
                smtp.starttls(context=ssl.create_default_context())
            if settings.smtp_user:
                password = settings.smtp_password
                smtp.login(settings.smtp_user, password.get_secret_value() if password else "")
            refused = smtp.send_message(message)
    except smtplib.SMTPRecipientsRefused:
        return Outcome(False, "SMTP: every recipient refused")
    except smtplib.SMTPResponseException as exc:
        return Outcome(False, f"SMTP {exc.smtp_code}")
    except (smtplib.SMTPException, ssl.SSLError, OSError) as exc:
        return Outcome(False, f"SMTP: {type(exc).__name__}")
    accepted = len(channel.to) - len(refused)
    return Outcome(True, f"SMTP accepted for {accepted} of {len(channel.to)} recipient(s)")


def _message(settings: Settings, channel: EmailChannel, claimed: Claimed) -> EmailMessage:
    payload = claimed.payload
    summary = " ".join(str(payload.get("summary", "")).split())  # no line breaks in a header
    message = EmailMessage()
    message["Subject"] = f"[hsts-orchestrator] {summary}"[:250]
    message["From"] = settings.smtp_from
    message["To"] = ", ".join(channel.to)
    message["Message-ID"] = f"<{claimed.id}@hsts-orchestrator>"
    message[DELIVERY_HEADER] = claimed.id
    job = payload.get("job") or {}
    lines = [
        str(payload.get("summary", "")),
        "",
        f"event: {payload.get('event')}",
        f"job: {job.get('id')} ({job.get('state')})",
        f"from: {job.get('source_node')} {', '.join(job.get('source_paths') or [])}",
        f"to: {job.get('destination_node')} {job.get('destination_path')}",
        "moved: "
        + units.moved(
            job.get("files_completed") or 0,
            job.get("bytes_transferred") or 0,
            job.get("files_skipped") or 0,
        ),
    ]
    if job.get("error_text") or job.get("reason"):
        lines.append(f"error: {job.get('reason') or job.get('error_text')}")
    if payload.get("schedule"):
        lines.append(f"schedule: {json.dumps(payload['schedule'], sort_keys=True)}")
    elif job.get("schedule_id"):
        lines.append(f"schedule: {job['schedule_id']}")
    lines += ["", f"delivery: {claimed.id}"]
    message.set_content("\n".join(lines) + "\n")
    return message
