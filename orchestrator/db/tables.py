"""The tables: nodes, jobs and their labels, attempts, cursors, job events, schedules, throughput
(per node pair and per job), link rates, job files, tokens and dashboard sessions, alerts, node
health."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from orchestrator.db.base import Base, MaskedText, UtcDateTime

OPEN_FAILURE = "acknowledged_at IS NULL AND state IN ('failed', 'needs_attention')"
HAS_PARENT = "parent_id IS NOT NULL"


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


class NodeRow(Base):
    """One HSTS node of the registry; its secret is stored encrypted (MultiFernet)."""

    __tablename__ = "nodes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    base_url: Mapped[str] = mapped_column(String(512))
    auth_kind: Mapped[str] = mapped_column(String(16))  # node_user | access_key | bearer
    username: Mapped[str] = mapped_column(String(256))  # node user, access key id
    secret_encrypted: Mapped[bytes] = mapped_column(LargeBinary)
    ca_bundle: Mapped[str | None] = mapped_column(Text)
    insecure: Mapped[bool] = mapped_column(Boolean, default=False)
    transfer_host: Mapped[str | None] = mapped_column(String(255))
    root_path: Mapped[str] = mapped_column(String(1024), default="/")
    max_outbound: Mapped[int] = mapped_column(Integer, default=10)
    max_inbound: Mapped[int] = mapped_column(Integer, default=10)
    # How long the node keeps transfer records (its activity_retention; node-api.md §7.5).
    activity_retention_seconds: Mapped[int] = mapped_column(
        Integer, default=129600, server_default="129600"
    )
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    # node_api: reached over its Node API. ssh: an SSH endpoint, a destination reached only by
    # its transfer user's SSH credentials (auth_kind ssh_password | ssh_key, the host in
    # transfer_host, base_url an ssh:// URL shown to people and never called).
    kind: Mapped[str] = mapped_column(String(16), default="node_api", server_default="node_api")
    ssh_port: Mapped[int | None] = mapped_column(Integer)
    sshfp: Mapped[str | None] = mapped_column(String(128))  # host key fingerprint to pin
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, onupdate=utcnow)


class JobRow(Base):
    """One request to copy paths from a source node to a destination node."""

    __tablename__ = "jobs"
    __table_args__ = (
        UniqueConstraint("idempotency_key"),
        UniqueConstraint("schedule_id", "slot_time"),
        Index("ix_jobs_state_priority", "state", "priority", "created_at"),
        Index("ix_jobs_next_attempt_at", "next_attempt_at"),
        # Newest-first lists and their cursor; the dashboard's latest ends per state.
        Index("ix_jobs_created", "created_at", "id"),
        Index("ix_jobs_state_changed", "state", "state_changed_at"),
        # Failures nobody acknowledged: what the dashboard counts, small whatever the history.
        Index(
            "ix_jobs_open_failures",
            "state",
            "state_changed_at",
            postgresql_where=text(OPEN_FAILURE),
            sqlite_where=text(OPEN_FAILURE),
        ),
        # A fan-out's parts: partial, so that no plan takes it for "parent_id IS NULL" (every
        # default list) instead of walking ix_jobs_created in order.
        Index(
            "ix_jobs_parent",
            "parent_id",
            postgresql_where=text(HAS_PARENT),
            sqlite_where=text(HAS_PARENT),
        ),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    source_node_id: Mapped[int] = mapped_column(ForeignKey("nodes.id"))
    source_paths: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    # The same paths one a line, so a path search is a LIKE on any database.
    source_paths_text: Mapped[str | None] = mapped_column(Text())
    destination_node_id: Mapped[int] = mapped_column(ForeignKey("nodes.id"))
    destination_path: Mapped[str] = mapped_column(String(1024))
    options: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    priority: Mapped[int] = mapped_column(Integer, default=0)
    idempotency_key: Mapped[str | None] = mapped_column(String(255))
    schedule_id: Mapped[str | None] = mapped_column(String(64))
    slot_time: Mapped[datetime | None] = mapped_column(UtcDateTime())
    labels: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    state: Mapped[str] = mapped_column(String(24))
    reason: Mapped[str | None] = mapped_column(MaskedText())
    attempt_count: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=3)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    bytes_transferred: Mapped[int] = mapped_column(BigInteger, default=0)
    bytes_expected: Mapped[int | None] = mapped_column(BigInteger)
    files_completed: Mapped[int] = mapped_column(Integer, default=0)
    files_expected: Mapped[int | None] = mapped_column(Integer)
    # Files the node left alone because the destination already had them (its last attempt).
    files_skipped: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    rate_kbps: Mapped[float | None] = mapped_column(Float)
    error_code: Mapped[int | None] = mapped_column(Integer)
    error_text: Mapped[str | None] = mapped_column(MaskedText())
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, onupdate=utcnow)
    state_changed_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    submit_failures: Mapped[int] = mapped_column(Integer, default=0)
    waiting_reason: Mapped[str | None] = mapped_column(MaskedText())
    source_root: Mapped[str] = mapped_column(String(1024), default="/")
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    # What the idempotency key stands for: the SHA-256 of the request, and the API token that
    # sent it (None: the queue or a schedule). A key reused otherwise is refused.
    request_digest: Mapped[str | None] = mapped_column(String(64))
    created_by_token: Mapped[int | None] = mapped_column(Integer)
    # A person has seen this failure: the dashboard's verdict no longer counts it. A retry
    # clears it, so the next failure is news again.
    acknowledged_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    acknowledged_by: Mapped[str | None] = mapped_column(String(128))
    # push: the source runs the transfer; pull: the destination does (services/conveyor/modes).
    mode: Mapped[str] = mapped_column(String(8), default="push", server_default="push")
    # When the job must be done by, when it is expected to end (the link's rate at submit,
    # then its own rate while it runs), and whether that is after the deadline.
    deadline: Mapped[datetime | None] = mapped_column(UtcDateTime())
    eta: Mapped[datetime | None] = mapped_column(UtcDateTime())
    at_risk: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    # Fan-out: a parent job is never dispatched; its state, bytes and files sum up its parts,
    # ordinary jobs (one per destination) whose parent_id names it. The parent's own
    # destination columns hold its first destination. No foreign key (migration 0021 says why):
    # retention removes a parent and its parts alike, as they end together.
    parent_id: Mapped[str | None] = mapped_column(String(36))
    is_parent: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    # On a link with a budget: why its transfer runs at its rate, or why it is paused.
    allocation_note: Mapped[str | None] = mapped_column(Text())


class JobLabelRow(Base):
    """One label of a job, so that a label filter is an index lookup, not a scan of jobs."""

    __tablename__ = "job_labels"
    __table_args__ = (Index("ix_job_labels_key_value", "key", "value"),)

    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(256))


class AttemptRow(Base):
    """One node transfer of a job: its uuid travels in the spec's tags before the POST.

    ``source_node_id`` is the node that runs (holds) the transfer: the job's source for a
    push, its destination for a pull. Polling, the tag search and the feed cursor use it.
    """

    __tablename__ = "attempts"
    __table_args__ = (
        UniqueConstraint("job_id", "number"),
        UniqueConstraint("source_node_id", "remote_id"),
        Index("ix_attempts_node_open", "source_node_id", "ended_at"),
        Index("ix_attempts_check_after", "source_node_id", "check_after"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    source_node_id: Mapped[int] = mapped_column(ForeignKey("nodes.id"))
    remote_id: Mapped[str | None] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(24))  # created, posting, on_node, node status…
    bytes_transferred: Mapped[int] = mapped_column(BigInteger, default=0)
    bytes_expected: Mapped[int | None] = mapped_column(BigInteger)
    files_completed: Mapped[int] = mapped_column(Integer, default=0)
    files_skipped: Mapped[int] = mapped_column(Integer, default=0)
    files_failed: Mapped[int] = mapped_column(Integer, default=0)
    files_expected: Mapped[int | None] = mapped_column(Integer)
    rate_kbps: Mapped[float | None] = mapped_column(Float)
    error_code: Mapped[int | None] = mapped_column(Integer)
    error_text: Mapped[str | None] = mapped_column(MaskedText())
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    post_started_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    # The source's saved change-feed cursor when the POST was claimed: a tag search from it
    # covers everything the node logged since, unless the node refuses it (it restarted).
    feed_token_at_post: Mapped[str | None] = mapped_column(String(128))
    submitted_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    started_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    last_seen_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    missing_since: Mapped[datetime | None] = mapped_column(UtcDateTime())
    # Ask the node about this transfer by id once this time has come: the feed has not
    # confirmed it since a resync, or the node's last answer settled nothing (a back-off).
    check_after: Mapped[datetime | None] = mapped_column(UtcDateTime())
    unsettled_checks: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # On a link with a budget: the target rate last sent to the node, when, and whether the
    # allocator (not a person) paused the transfer, so that it alone resumes it.
    allocated_kbps: Mapped[int | None] = mapped_column(Integer)
    allocated_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    policy_paused: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")


class JobFileRow(Base):
    """One file of a job's completed transfer, with the checksum its source node reported."""

    __tablename__ = "job_files"
    __table_args__ = (
        UniqueConstraint("attempt_id", "position"),
        Index("ix_job_files_job", "job_id", "attempt_number", "position"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    attempt_id: Mapped[str] = mapped_column(ForeignKey("attempts.id", ondelete="CASCADE"))
    attempt_number: Mapped[int] = mapped_column(Integer)
    position: Mapped[int] = mapped_column(Integer)  # the file's place in the node's files[]
    path: Mapped[str] = mapped_column(Text())
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    status: Mapped[str] = mapped_column(String(16))
    checksum_type: Mapped[str | None] = mapped_column(String(16))
    checksum: Mapped[str | None] = mapped_column(String(256))


class NodeCursorRow(Base):
    """A source node's change-feed position and the lease that keeps two polls apart."""

    __tablename__ = "node_cursors"

    node_id: Mapped[int] = mapped_column(
        ForeignKey("nodes.id", ondelete="CASCADE"), primary_key=True
    )
    iteration_token: Mapped[str | None] = mapped_column(String(128))
    lease_owner: Mapped[str | None] = mapped_column(String(128))
    lease_until: Mapped[datetime | None] = mapped_column(UtcDateTime())
    last_poll_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    last_success_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    # Adaptive polling: when the node's feed is read next (set after each poll and when a poll
    # is sent; NULL = not planned yet, so the fan-out at each poll interval sends one).
    next_poll_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    # Slots a poll of the node freed wait until then, for one submit batch (dispatch holds the
    # jobs the node would run; NULL or past: none held).
    gather_until: Mapped[datetime | None] = mapped_column(UtcDateTime())
    lag_seconds: Mapped[float | None] = mapped_column(Float)
    last_error: Mapped[str | None] = mapped_column(MaskedText())


class NodeHealthRow(Base):
    """The last reachability check of a node (ping and /info), source or destination alike."""

    __tablename__ = "node_health"

    node_id: Mapped[int] = mapped_column(
        ForeignKey("nodes.id", ondelete="CASCADE"), primary_key=True
    )
    checked_at: Mapped[datetime] = mapped_column(UtcDateTime())
    reachable: Mapped[bool] = mapped_column(Boolean)
    version: Mapped[str | None] = mapped_column(String(64))
    activity_logging: Mapped[bool | None] = mapped_column(Boolean)
    # The sessions the node says it runs at once, when its /info says it (it may not).
    session_limit: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(MaskedText())


class JobEventRow(Base):
    """An append-only record of one thing that happened to a job."""

    __tablename__ = "job_events"
    __table_args__ = (Index("ix_job_events_job", "job_id", "id"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    kind: Mapped[str] = mapped_column(String(32))  # state, attempt, node_error, operator, ...
    from_state: Mapped[str | None] = mapped_column(String(24))
    to_state: Mapped[str | None] = mapped_column(String(24))
    message: Mapped[str] = mapped_column(MaskedText(), default="")
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


DISPATCH_LOCK = "dispatch"  # the lock row every dispatch run stamps: taken_at is its last run


class ServiceLockRow(Base):
    """A named row that a transaction updates first to serialise one kind of work (dispatch)."""

    __tablename__ = "service_locks"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str | None] = mapped_column(String(128))
    taken_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class ApiTokenRow(Base):
    """An API token: only its SHA-256 is stored; scopes say what it may do."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    prefix: Mapped[str] = mapped_column(String(16), unique=True)
    secret_hash: Mapped[str] = mapped_column(String(64))
    scopes: Mapped[list[str]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)
    expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime())  # None: never


class DashboardSessionRow(Base):
    """A dashboard sign-in: the cookie holds a secret of its own (only its SHA-256 is kept),
    never the API token; signing out deletes the row, and it ends with its lifetime or its
    token (revoked, expired)."""

    __tablename__ = "dashboard_sessions"
    __table_args__ = (Index("ix_dashboard_sessions_expires_at", "expires_at"),)

    secret_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    token_id: Mapped[int] = mapped_column(ForeignKey("api_tokens.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime())


class ScheduleRow(Base):
    """A replication schedule; ``done_until`` is the newest slot already run or skipped."""

    __tablename__ = "schedules"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    description: Mapped[str] = mapped_column(Text, default="")
    source_node_id: Mapped[int] = mapped_column(ForeignKey("nodes.id"))
    source_paths: Mapped[list[str]] = mapped_column(JSON)
    destination_node_id: Mapped[int] = mapped_column(ForeignKey("nodes.id"))
    destination_path: Mapped[str] = mapped_column(String(1024))
    # A fan-out schedule's destinations, [{"node_id", "path"}], the first also in the two
    # columns above; None for one destination.
    destinations: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    cron: Mapped[str | None] = mapped_column(String(128))
    interval_seconds: Mapped[int | None] = mapped_column(Integer)
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    options: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    priority: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=3)
    overlap: Mapped[str] = mapped_column(String(8), default="skip")  # skip | queue
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    alerts: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    labels: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    mode: Mapped[str] = mapped_column(String(8), default="push", server_default="push")
    deadline_after_seconds: Mapped[int | None] = mapped_column(Integer)  # each run's deadline
    managed_by: Mapped[str] = mapped_column(String(16), default="api")  # api | config
    done_until: Mapped[datetime] = mapped_column(UtcDateTime())
    skipped_slots: Mapped[int] = mapped_column(Integer, default=0)
    last_skipped_slot: Mapped[datetime | None] = mapped_column(UtcDateTime())
    last_error: Mapped[str | None] = mapped_column(MaskedText())  # why the last slot made no job
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, onupdate=utcnow)


class ThroughputMinuteRow(Base):
    """Bytes and files moved in one minute between two nodes (polling adds the deltas)."""

    __tablename__ = "throughput_minutes"

    minute: Mapped[datetime] = mapped_column(UtcDateTime(), primary_key=True)
    source_node_id: Mapped[int] = mapped_column(
        ForeignKey("nodes.id", ondelete="CASCADE"), primary_key=True
    )
    destination_node_id: Mapped[int] = mapped_column(
        ForeignKey("nodes.id", ondelete="CASCADE"), primary_key=True
    )
    bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    files: Mapped[int] = mapped_column(Integer, default=0)


class LinkRateRow(Base):
    """A node pair's measured rate: an EMA of its finished transfers' average rates."""

    __tablename__ = "link_rates"

    source_node_id: Mapped[int] = mapped_column(
        ForeignKey("nodes.id", ondelete="CASCADE"), primary_key=True
    )
    destination_node_id: Mapped[int] = mapped_column(
        ForeignKey("nodes.id", ondelete="CASCADE"), primary_key=True
    )
    bytes_per_second: Mapped[float] = mapped_column(Float)
    transfers: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class LinkBudgetRow(Base):
    """An operator's rate budget for a node pair, shared live by the transfers on it."""

    __tablename__ = "link_budgets"

    source_node_id: Mapped[int] = mapped_column(
        ForeignKey("nodes.id", ondelete="CASCADE"), primary_key=True
    )
    destination_node_id: Mapped[int] = mapped_column(
        ForeignKey("nodes.id", ondelete="CASCADE"), primary_key=True
    )
    kbps: Mapped[int] = mapped_column(Integer)
    updated_by: Mapped[str | None] = mapped_column(String(128))
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class JobMinuteRow(Base):
    """Bytes and files one job moved in one minute (its progress chart); gone with the job."""

    __tablename__ = "job_minutes"

    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    minute: Mapped[datetime] = mapped_column(UtcDateTime(), primary_key=True)
    bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    files: Mapped[int] = mapped_column(Integer, default=0)


class AlertRow(Base):
    """One alert for one channel (transactional outbox): written with the event, sent later.

    ``next_attempt_at`` is both the back-off and the claim: a sender pushes it past its own
    deadline and bumps ``attempts``, which then fences its outcome write.
    """

    __tablename__ = "alerts"
    __table_args__ = (
        UniqueConstraint("dedupe_key"),
        Index("ix_alerts_state_next_attempt_at", "state", "next_attempt_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    kind: Mapped[str] = mapped_column(String(24))  # job_end | schedule_failing | ..._recovered
    job_id: Mapped[str | None] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    schedule_id: Mapped[str | None] = mapped_column(String(64))
    channel: Mapped[str] = mapped_column(String(64))
    dedupe_key: Mapped[str | None] = mapped_column(String(255))  # once-only alerts (streaks)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(8), default="pending")  # pending | sent | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UtcDateTime())
    last_error: Mapped[str | None] = mapped_column(MaskedText())
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class BreakerRow(Base):
    """A circuit breaker on a link (source → destination) or a hold on a destination node.

    ``key`` is "link:<source id>:<destination id>" or "destination:<node id>". A row that
    exists is open or probing; closing deletes it (a link breaker keeps its row while closed
    to remember its recent ``outcomes``, "s"/"f" oldest first).
    """

    __tablename__ = "breakers"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    scope: Mapped[str] = mapped_column(String(16))  # link | destination
    source_node_id: Mapped[int | None] = mapped_column(
        ForeignKey("nodes.id", ondelete="CASCADE"), nullable=True
    )
    destination_node_id: Mapped[int] = mapped_column(ForeignKey("nodes.id", ondelete="CASCADE"))
    state: Mapped[str] = mapped_column(String(16), default="closed")  # closed | open | probing
    outcomes: Mapped[str] = mapped_column(String(64), default="")
    reason: Mapped[str | None] = mapped_column(MaskedText())
    opened_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    probe_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    cool_down_seconds: Mapped[float | None] = mapped_column(Float)
    probe_job_id: Mapped[str | None] = mapped_column(String(36))
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, onupdate=utcnow)


class MaintenanceWindowRow(Base):
    """A node's maintenance window: recurring (cron, duration, time zone) or one-off."""

    __tablename__ = "maintenance_windows"
    __table_args__ = (Index("ix_maintenance_windows_node", "node_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    node_id: Mapped[int] = mapped_column(ForeignKey("nodes.id", ondelete="CASCADE"))
    cron: Mapped[str | None] = mapped_column(String(128))
    duration_seconds: Mapped[int | None] = mapped_column(Integer)
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    starts_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    ends_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    reason: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class MaintenanceHoldRow(Base):
    """A job whose transfer the orchestrator paused for a node's maintenance: resumed after it."""

    __tablename__ = "maintenance_holds"

    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    node_id: Mapped[int] = mapped_column(ForeignKey("nodes.id", ondelete="CASCADE"))
    attempt_number: Mapped[int] = mapped_column(Integer)
    remote_id: Mapped[str] = mapped_column(String(128))
    until: Mapped[datetime] = mapped_column(UtcDateTime())  # the window's end when paused
    paused_at: Mapped[datetime] = mapped_column(UtcDateTime())


class NodeLoadRow(Base):
    """What a node runs for other clients: its active transfers without our tag, last counted."""

    __tablename__ = "node_load"

    node_id: Mapped[int] = mapped_column(
        ForeignKey("nodes.id", ondelete="CASCADE"), primary_key=True
    )
    others: Mapped[int | None] = mapped_column(Integer)  # None: the last count failed
    ours: Mapped[int | None] = mapped_column(Integer)  # ours among its active, as it listed them
    quiet: Mapped[int] = mapped_column(Integer, default=0)  # counts in a row that found no others
    counted_at: Mapped[datetime] = mapped_column(UtcDateTime())
    error: Mapped[str | None] = mapped_column(MaskedText())


class LinkConcurrencyRow(Base):
    """A link's adaptive limit on our active jobs, with what the last decision measured and why."""

    __tablename__ = "link_concurrency"

    source_node_id: Mapped[int] = mapped_column(
        ForeignKey("nodes.id", ondelete="CASCADE"), primary_key=True
    )
    destination_node_id: Mapped[int] = mapped_column(
        ForeignKey("nodes.id", ondelete="CASCADE"), primary_key=True
    )
    active_limit: Mapped[int] = mapped_column(Integer)
    last_kbps: Mapped[float | None] = mapped_column(Float)
    last_step: Mapped[int] = mapped_column(Integer, default=0)
    quiet: Mapped[int] = mapped_column(Integer, default=0)
    reason: Mapped[str | None] = mapped_column(Text)
    decided_at: Mapped[datetime] = mapped_column(UtcDateTime())
    # Bytes tallied for the pair from decided_at's minute on, as of decided_at (concurrency.py);
    # None while a moved limit settles, before its interval starts.
    bytes_mark: Mapped[int | None] = mapped_column(BigInteger)
