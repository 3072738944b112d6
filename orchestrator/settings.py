"""Settings: the only reader of the environment (ORCH_* variables, pydantic-settings).

Build one ``Settings`` at the entry point and pass it (or a part of it) down; nothing reads the
environment or config files at import time.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Every ORCH_* setting; config/settings.example.env documents each one."""

    model_config = SettingsConfigDict(env_prefix="ORCH_", extra="ignore", frozen=True)

    data_dir: Path = Field(default=Path("var"), description="where the embedded stack keeps files")
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; unset = a SQLite file in data_dir"
    )
    redis_url: str | None = Field(
        default=None,
        description="broker URL: redis://:PASSWORD@host:6379/0, or Sentinels "
        "(sentinel://:PASSWORD@h1:26379/0;sentinel://h2:26379); unset = a redis-server the "
        "stack starts itself",
    )
    redis_sentinel_master: str = Field(
        default="mymaster",
        min_length=1,
        description="with a sentinel:// broker URL: the master name the Sentinels monitor",
    )
    redis_sentinel_password: SecretStr | None = Field(
        default=None,
        description="with a sentinel:// broker URL: the Sentinels' own password (their "
        "requirepass), if they have one; the master's goes in the URL",
    )
    secret_keys: SecretStr | None = Field(
        default=None, description="comma-separated Fernet keys, newest first (MultiFernet)"
    )
    poll_interval: float = Field(default=2.0, gt=0, description="seconds between node polls")
    poll_mode: Literal["fixed", "adaptive"] = Field(
        default="adaptive",
        description="fixed: every source node each poll interval; adaptive: each node when one "
        "of its transfers is due to end, within [floor, ceiling] (docs/operations.md)",
    )
    poll_floor_seconds: float = Field(
        default=0.5, gt=0, description="adaptive polling: never two polls of a node closer"
    )
    poll_ceiling_intervals: float = Field(
        default=3.0,
        ge=1.0,
        le=30.0,
        description="adaptive polling: a node with open transfers is polled at least every "
        "this many poll intervals (or at its transfers' expected ends, when they come within "
        "one interval after that)",
    )
    sweep_interval: float = Field(default=5.0, gt=0, description="seconds between sweeps")
    replication_tick_seconds: float = Field(
        default=5.0, gt=0, le=60, description="seconds between checks for due schedule slots"
    )
    replications_file: Path | None = Field(
        default=Path("config/replications.yaml"),
        description="schedules applied at start (up, beat); empty or absent file = none",
    )
    node_check_seconds: float = Field(
        default=60.0,
        ge=2,
        le=3600,
        description="seconds between health checks (ping and /info) of every enabled node, "
        "destinations included",
    )
    node_connect_timeout: float = Field(default=5.0, gt=0, description="seconds to connect")
    node_read_timeout: float = Field(
        default=30.0, gt=0, description="seconds to wait for a node's answer"
    )
    log_level: str = Field(default="INFO", description="DEBUG, INFO, WARNING or ERROR")
    log_format: Literal["auto", "json", "plain"] = Field(
        default="auto", description="log lines: json, plain, or auto (plain on a terminal)"
    )

    api_docs: bool = Field(
        default=False,
        description="serve Swagger UI at /api/v1/docs (its scripts come from a CDN, on a page "
        "where people paste tokens: leave off unless you trust that CDN)",
    )
    dashboard_session_seconds: int = Field(
        default=8 * 3600,
        ge=60,
        le=30 * 86400,
        description="a dashboard sign-in lasts this long at most (signing out ends it sooner)",
    )

    # -- orchestration ---------------------------------------------------------------------
    max_per_link: int = Field(default=20, ge=1, description="active jobs per (source, dest) pair")
    node_load_seconds: float = Field(
        default=10.0,
        ge=0,
        le=3600,
        description="how often the nodes that would run queued jobs are asked how many "
        "transfers they run for other clients (counted against their session limit); 0: never",
    )
    adaptive_concurrency: bool = Field(
        default=False,
        description="tune each link's number of active jobs within [1, max_per_link] from its "
        "measured throughput (off: every link allows max_per_link)",
    )
    adaptive_start: int = Field(
        default=2, ge=1, description="a link's first limit under adaptive concurrency"
    )
    adaptive_interval_seconds: float = Field(
        default=30.0, gt=0, le=3600, description="at most one adaptive decision per link this often"
    )
    adaptive_min_gain: float = Field(
        default=0.1,
        gt=0,
        lt=1,
        description="the share by which throughput must rise for one more active to be kept",
    )
    retry_backoff_seconds: float = Field(default=10.0, gt=0, description="first retry wait")
    retry_backoff_max_seconds: float = Field(
        default=600.0, gt=0, description="longest retry wait (the wait doubles each attempt)"
    )
    breaker_window: int = Field(
        default=8, ge=1, le=32, description="recent attempts a link's circuit breaker weighs"
    )
    breaker_failures: int = Field(
        default=5, ge=1, le=32, description="failed attempts of the window that open a link"
    )
    breaker_cool_down_seconds: float = Field(
        default=60.0, gt=0, description="first pause of an opened link or held destination"
    )
    breaker_cool_down_max_seconds: float = Field(
        default=900.0, gt=0, description="longest pause (it doubles each failed probe)"
    )
    submit_batch_size: int = Field(
        default=100,
        ge=1,
        le=500,
        description="most jobs per submit task (one upload_setup and one /files/info each)",
    )
    dispatch_gather_seconds: float = Field(
        default=2.0,
        ge=0,
        le=30,
        description="after a poll frees slots, the node's jobs wait this long (at most a tenth "
        "of the quickest transfer that ended) so slots freed together go out as one submit "
        "batch (one upload_setup, one /files/info); 0: at once",
    )
    max_submit_failures: int = Field(
        default=10, ge=1, description="node API failures while submitting before a job fails"
    )
    submit_lease_seconds: float = Field(
        default=40.0,
        gt=0,
        description="after this, ADMITTED/SUBMITTING work is sent again (a working submit "
        "renews it before each node call, so it only has to outlast one call)",
    )
    post_settle_seconds: float = Field(
        default=45.0,
        gt=0,
        description="after an unanswered POST, how long to wait before a tag search may "
        "conclude the node created nothing",
    )
    token_life_seconds: int = Field(
        default=6 * 3600, gt=0, description="lifetime asked for upload tokens"
    )
    history_days: float = Field(
        default=90.0,
        ge=0,
        description="ended jobs (and throughput rows) older than this many days are archived "
        "and deleted; 0 keeps everything",
    )
    archive_dir: Path | None = Field(
        default=None,
        description="where pruned jobs are written first, one JSON line each (none: deleted)",
    )
    beat_leader_seconds: float = Field(
        default=6.0,
        ge=1.0,
        le=300.0,
        description="the beat leader's lock lasts this long unless renewed: a standby beat "
        "takes over this long after the leader dies",
    )
    progress_seconds: float = Field(
        default=5.0,
        ge=0,
        description="a running transfer's byte and file counts are written at most this often "
        "(state changes at once)",
    )
    unseen_check_seconds: float = Field(
        default=300.0, gt=0, description="GET a transfer the change feed has not mentioned"
    )
    lost_after_seconds: float = Field(
        default=600.0,
        gt=0,
        description="a transfer the source node no longer knows is retried after this long "
        "(it may still run and reappear in the feed meanwhile)",
    )
    poll_lease_seconds: float = Field(default=30.0, gt=0, description="one poller per node")
    feed_page_size: int = Field(default=500, ge=1, le=10_000, description="count per page")
    queued_sweep_seconds: float = Field(
        default=10.0, gt=0, description="QUEUED this long gets its dispatch sent again"
    )

    # -- alerts (docs/alerts.md) -------------------------------------------------------------
    alerts_file: Path | None = Field(
        default=None, description="the operator's alert channels and rules (YAML); unset = none"
    )
    alerts_webhook_secret: SecretStr | None = Field(
        default=None, description="HMAC key of webhook channels that name no secret_env"
    )
    alert_timeout_seconds: float = Field(
        default=10.0, gt=0, le=120, description="one webhook or SMTP delivery, at most"
    )
    alert_retry_seconds: float = Field(
        default=10.0, gt=0, description="first wait after a failed delivery (it doubles)"
    )
    alert_retry_max_seconds: float = Field(
        default=900.0, gt=0, description="longest wait between two delivery attempts"
    )
    alert_max_attempts: int = Field(
        default=8, ge=1, le=100, description="delivery attempts before an alert is given up"
    )
    smtp_host: str | None = Field(default=None, description="mail server of email channels")
    smtp_port: int = Field(default=587, ge=1, le=65535, description="mail server port")
    smtp_user: str | None = Field(default=None, description="SMTP login; unset = no AUTH")
    smtp_password: SecretStr | None = Field(default=None, description="SMTP password")
    smtp_from: str = Field(
        default="hsts-orchestrator@localhost", description="From: address of alert mails"
    )
    smtp_starttls: bool = Field(default=True, description="upgrade the connection (STARTTLS)")

    # -- metrics ---------------------------------------------------------------------------
    node_api_metrics: bool = Field(
        default=True,
        description="workers count node API requests, errors and latency in Redis for /metrics",
    )
    metrics_flush_seconds: float = Field(
        default=5.0, gt=0, le=300, description="how often a worker adds its counts to Redis"
    )

    @field_validator(
        "replications_file",
        "alerts_file",
        "alerts_webhook_secret",
        "archive_dir",
        "redis_sentinel_password",
        mode="before",
    )
    @classmethod
    def _empty_means_none(cls, value: object) -> object:
        return None if value == "" else value

    @model_validator(mode="after")
    def _leases_outlast_node_calls(self) -> Settings:
        call = self.node_connect_timeout + self.node_read_timeout
        if self.post_settle_seconds <= call:
            raise ValueError(
                f"ORCH_POST_SETTLE_SECONDS ({self.post_settle_seconds}) must exceed one node "
                f"call (connect + read timeouts = {call}), or a slow POST could be posted twice"
            )
        if self.submit_lease_seconds <= call:
            raise ValueError(
                f"ORCH_SUBMIT_LEASE_SECONDS ({self.submit_lease_seconds}) must exceed one node "
                f"call (connect + read timeouts = {call})"
            )
        return self

    @model_validator(mode="after")
    def _breaker_can_open(self) -> Settings:
        if self.breaker_failures > self.breaker_window:
            raise ValueError(
                f"ORCH_BREAKER_FAILURES ({self.breaker_failures}) must not exceed "
                f"ORCH_BREAKER_WINDOW ({self.breaker_window}), or no link's breaker ever opens"
            )
        return self

    def effective_database_url(self) -> str:
        """The database URL, defaulting to a SQLite file under data_dir."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'orchestrator.db').resolve()}"


def load_settings() -> Settings:
    """Read the environment once; call from entry points only."""
    return Settings()


def secret_from_environment(name: str) -> SecretStr | None:
    """The secret held by the environment variable a config file names (unset or empty: None)."""
    value = os.environ.get(name)
    return SecretStr(value) if value else None
