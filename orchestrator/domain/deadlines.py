"""Deadlines: a link's measured rate (an EMA), a job's estimated finish, and the words for both."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field

from orchestrator.domain import units

DeadlinePolicy = Literal["warn", "reject"]

EMA_WEIGHT = 0.3  # the newest transfer's share of a link's rate
ETA_STEP_SECONDS = 5.0  # a running job's ETA is written again only when it moves by more
MIN_SAMPLE_SECONDS = 0.5  # shorter transfers say more about latency than about the link
MAX_AHEAD = timedelta(days=3650)  # an ETA further off is capped (a datetime ends at year 9999)

_RELATIVE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd])\s*$", re.IGNORECASE)
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class BadDeadline(ValueError):
    """A deadline that is neither a time with a zone nor a duration like '2h'."""


def relative_seconds(text: str) -> float | None:
    """Seconds of a duration like '90s', '45m', '2h', '1.5d'; None when ``text`` is not one."""
    found = _RELATIVE.match(text)
    if found is None:
        return None
    return float(found.group(1)) * _UNIT_SECONDS[found.group(2).lower()]


MAX_DEADLINE_AFTER = 366 * 86400


def _duration_seconds(value: Any) -> Any:
    """'2h' as 7200; numbers (seconds) as they are; the rest for pydantic to refuse."""
    if isinstance(value, str):
        seconds = relative_seconds(value)
        if seconds is None:
            raise ValueError(f"{value!r} is not a duration like '90m', '2h' or '1d'")
        return round(seconds)
    return value


# A deadline relative to a schedule run's start: '2h', '90m', or seconds.
DeadlineAfter = (
    Annotated[int, BeforeValidator(_duration_seconds), Field(ge=60, le=MAX_DEADLINE_AFTER)] | None
)


def parse_deadline(text: str, now: datetime) -> datetime:
    """A deadline from '2h' (from ``now``) or an ISO time with its zone ('2026-12-01T06:00Z')."""
    seconds = relative_seconds(text)
    if seconds is not None:
        return now + timedelta(seconds=seconds)
    try:
        at = datetime.fromisoformat(text.strip())
    except ValueError:
        raise BadDeadline(
            f"{text!r}: give a time with its zone (2026-12-01T06:00Z) or a duration (2h, 90m)"
        ) from None
    if at.tzinfo is None:
        raise BadDeadline(f"{text!r}: add the time zone (Z for UTC, or +01:00)")
    return at


def next_rate(previous: float | None, sample: float) -> float:
    """A link's rate after one more transfer's: the EMA, or the sample itself when first."""
    if previous is None:
        return sample
    return previous * (1 - EMA_WEIGHT) + sample * EMA_WEIGHT


@dataclass(frozen=True)
class RateFold:
    """Several samples folded for one write: ``new = old * keep + add``, or ``first`` when the
    link had no rate yet (the same result as applying ``next_rate`` once per sample)."""

    keep: float
    add: float
    first: float


def fold_rates(samples: Sequence[float]) -> RateFold:
    """The fold of ``samples`` (oldest first; at least one)."""
    keep, add = 1.0, 0.0
    first: float | None = None
    for sample in samples:
        keep *= 1 - EMA_WEIGHT
        add = add * (1 - EMA_WEIGHT) + sample * EMA_WEIGHT
        first = next_rate(first, sample)
    if first is None:
        raise ValueError("fold_rates needs at least one sample")
    return RateFold(keep, add, first)


def transfer_rate(nbytes: int, started: datetime | None, ended: datetime | None) -> float | None:
    """A finished transfer's average rate (bytes per second), when it says something."""
    if started is None or ended is None or nbytes <= 0:
        return None
    seconds = (ended - started).total_seconds()
    if seconds < MIN_SAMPLE_SECONDS:
        return None
    return nbytes / seconds


def finish_at(now: datetime, rate: float | None, nbytes: int) -> datetime | None:
    """When ``nbytes`` will have moved at ``rate`` bytes per second; None without a rate."""
    if not rate or rate <= 0:
        return None
    seconds = min(max(0, nbytes) / rate, MAX_AHEAD.total_seconds())
    return now + timedelta(seconds=seconds)


def clock(at: datetime, now: datetime) -> str:
    """A time as a person reads it next to ``now``: '03:40 UTC', or with its date."""
    at, now = at.astimezone(UTC), now.astimezone(UTC)
    return at.strftime("%H:%M UTC" if at.date() == now.date() else "%Y-%m-%d %H:%M UTC")


@dataclass(frozen=True)
class Admission:
    """What is known about a job's deadline when it is submitted."""

    link: str  # 'a → b'
    deadline: datetime
    rate: float | None  # the link's measured bytes per second
    bytes_ahead: int  # bytes of the link's work admitted before this job
    own_bytes: int | None  # None: its size is known only once the source is checked

    def eta(self, now: datetime) -> datetime | None:
        """When the job would finish: its own bytes after the work ahead (its own counted as
        nothing while unknown, so the ETA is then the earliest it could be)."""
        return finish_at(now, self.rate, self.bytes_ahead + (self.own_bytes or 0))

    def feasible(self, now: datetime) -> bool:
        """Whether the deadline can be met as far as is known (yes, without a measurement)."""
        eta = self.eta(now)
        return eta is None or eta <= self.deadline

    def warning(self, now: datetime) -> str | None:
        """What the caller is told: no measurement yet, or a deadline the job would miss."""
        if self.rate is None:
            return f"no measured throughput for {self.link} yet; the deadline is not checked"
        eta = self.eta(now)
        if eta is None or eta <= self.deadline:
            return None
        work = units.size(self.bytes_ahead + (self.own_bytes or 0))
        own = "" if self.own_bytes is not None else " (its own size not known yet)"
        return (
            f"at the link's measured {units.bitrate(units.kbps_of(self.rate))} and {work} "
            f"ahead{own}, this job would finish about {clock(eta, now)}, after its deadline "
            f"{clock(self.deadline, now)}"
        )


def eta_moved(old: datetime | None, new: datetime | None) -> bool:
    """Whether a stored ETA should be written again (appeared, vanished, or moved by more
    than ETA_STEP_SECONDS)."""
    if old is None or new is None:
        return old is not new
    return abs((new - old).total_seconds()) > ETA_STEP_SECONDS


def risk_text(now: datetime, eta: datetime, deadline: datetime, rate_kbps: float, left: int) -> str:
    """Why a running job is flagged: 'at 12.0 Mbps with 3.00 GB left, it would finish …'."""
    return (
        f"at risk: at {units.bitrate(rate_kbps)} with {units.size(left)} left, it would finish "
        f"about {clock(eta, now)}, after its deadline {clock(deadline, now)}"
    )


def lateness(finished: datetime, deadline: datetime) -> str:
    """How late a job ended: 'deadline missed by 4 min 10 s (…)'."""
    seconds = round((finished - deadline).total_seconds())
    minutes, rest = divmod(seconds, 60)
    late = f"{minutes} min {rest} s" if minutes else f"{rest} s"
    return f"deadline missed by {late} (deadline {units.moment(deadline)})"
