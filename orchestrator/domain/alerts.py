"""Alert channels and rules as the operator writes them in the alerts file, and who hears what.

Channels come only from the operator's file: an API caller can name a channel, never a URL
(DESIGN.md rule 6 in spirit). The file holds no secret: a webhook names the environment
variable that holds its signing key.
"""

from __future__ import annotations

from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from orchestrator.domain.schedules import ScheduleAlerts
from orchestrator.domain.states import FAILED_ENDS, JobState

CHANNEL_NAME = r"^[a-z0-9][a-z0-9._-]*$"
Policy = Literal["never", "failure", "always"]
# A job "ends" for alerts when it is terminal or waits for a person.
JOB_ENDS = frozenset({JobState.COMPLETED, JobState.CANCELED}) | FAILED_ENDS
# One address: no spaces or line breaks (they would let a value add mail headers).
_ADDRESS = r"^[^@\s<>,;]+@[^@\s<>,;]+$"


class WebhookChannel(BaseModel):
    """An HTTPS (or HTTP) endpoint that receives signed JSON posts."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["webhook"]
    url: str = Field(min_length=1, max_length=2048)
    secret_env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{url!r} is not an http(s) URL")
        if parts.username or parts.password:
            raise ValueError("put no credentials in the URL: the signature authenticates us")
        return url


class EmailChannel(BaseModel):
    """Mail to a list of addresses through the SMTP server of the settings."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["email"]
    to: list[Annotated[str, Field(pattern=_ADDRESS, max_length=254)]] = Field(
        min_length=1, max_length=50
    )


Channel = Annotated[WebhookChannel | EmailChannel, Field(discriminator="kind")]


class AlertDefaults(BaseModel):
    """Rules for every job and every schedule, on top of each schedule's own."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    on_job_end: Policy = "never"
    job_end_channels: list[str] = Field(default_factory=list)
    streak_channels: list[str] = Field(default_factory=list)
    # Told when a source node's poll lag nears the time it keeps transfer records, when a link's
    # circuit breaker opens, when a full destination is held, and when a node is disabled.
    node_channels: list[str] = Field(default_factory=list)


class AlertsConfig(BaseModel):
    """The alerts file: named channels and the global rules."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    channels: dict[Annotated[str, Field(pattern=CHANNEL_NAME, max_length=64)], Channel] = Field(
        default_factory=dict
    )
    defaults: AlertDefaults = AlertDefaults()

    @model_validator(mode="after")
    def _defaults_name_channels(self) -> AlertsConfig:
        for field in ("job_end_channels", "streak_channels", "node_channels"):
            unknown = sorted(set(getattr(self.defaults, field)) - set(self.channels))
            if unknown:
                raise ValueError(f"defaults.{field}: no channel named {', '.join(unknown)}")
        return self


def wants(policy: Policy, state: JobState) -> bool:
    """Whether a job that ended in ``state`` is reported under this policy."""
    return policy == "always" or (policy == "failure" and state in FAILED_ENDS)


def job_end_channels(
    config: AlertsConfig, schedule: ScheduleAlerts | None, state: JobState
) -> list[str]:
    """The channels told that a job ended in ``state`` (global rule, then its schedule's)."""
    names = (
        list(config.defaults.job_end_channels) if wants(config.defaults.on_job_end, state) else []
    )
    if schedule is not None and wants(schedule.on_run_end, state):
        names += schedule.channels
    return list(dict.fromkeys(names))


def streak_channels(config: AlertsConfig, schedule: ScheduleAlerts) -> list[str]:
    """The channels told that a schedule keeps failing."""
    return list(dict.fromkeys([*config.defaults.streak_channels, *schedule.channels]))
