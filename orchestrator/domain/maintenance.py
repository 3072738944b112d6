"""Maintenance windows of a node: recurring (cron + duration, in a time zone) or one-off (start,
end), when each occurrence falls, and whether a job may start before the next one."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Self

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

from orchestrator.domain.schedules import ScheduleTiming, checked_cron, known_zone, latest_slot
from orchestrator.domain.schedules import next_slot as next_cron_slot

MAX_DURATION = 7 * 24 * 3600
# With no estimate of how long a job takes (no size, or no measured throughput on its link),
# a job starts only when the node's next window is further away than this.
UNKNOWN_HORIZON = timedelta(hours=1)
# An estimate is stretched by this much before it is compared with the time left: throughput
# measured over recent minutes is not a promise.
ESTIMATE_MARGIN = 1.25
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)  # one-off windows fall between these
LATEST = datetime(2200, 1, 1, tzinfo=UTC)
NOTED_AHEAD = timedelta(days=7)  # how far ahead the node views mention the next window


class MaintenanceSpec(BaseModel):
    """A window as it is asked for: ``cron`` + ``duration_seconds`` (+ ``timezone``), or
    ``start`` + ``end``; and why."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    cron: str | None = Field(default=None, min_length=1, max_length=128)
    duration_seconds: int | None = Field(default=None, ge=60, le=MAX_DURATION)
    timezone: str = Field(default="UTC", min_length=1, max_length=64)
    start: AwareDatetime | None = None
    end: AwareDatetime | None = None
    reason: str = Field(min_length=1, max_length=500)

    @field_validator("cron")
    @classmethod
    def _valid_cron(cls, value: str | None) -> str | None:
        return checked_cron(value)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        return known_zone(value)

    @field_validator("start", "end")
    @classmethod
    def _in_utc(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        if not EARLIEST <= value <= LATEST:
            raise ValueError(f"must be between {EARLIEST.year} and {LATEST.year - 1}")
        return value.astimezone(UTC)

    @model_validator(mode="after")
    def _one_kind(self) -> Self:
        one_off = self.start is not None or self.end is not None
        if self.cron is not None and one_off:
            raise ValueError("give either cron with duration_seconds, or start with end; not both")
        if self.cron is not None and self.duration_seconds is None:
            raise ValueError("duration_seconds: a recurring window needs a duration")
        if self.cron is None and not one_off:
            raise ValueError("give cron with duration_seconds, or start with end")
        if one_off:
            if self.start is None or self.end is None:
                raise ValueError("a one-off window needs both start and end")
            if self.end <= self.start:
                raise ValueError("end: must be after start")
            if self.duration_seconds is not None:
                raise ValueError("duration_seconds: a one-off window's length is end - start")
        return self


@dataclass(frozen=True)
class Occurrence:
    """One stretch of maintenance of one node, in UTC."""

    window_id: int
    node: str
    start: datetime
    end: datetime
    reason: str


@dataclass(frozen=True)
class Window:
    """A stored window of a node, able to say when it happens."""

    id: int
    node: str
    reason: str
    cron: str | None = None
    duration_seconds: int | None = None
    timezone: str = "UTC"
    starts_at: datetime | None = None
    ends_at: datetime | None = None

    def _timing(self) -> ScheduleTiming:
        return ScheduleTiming(cron=self.cron, timezone=self.timezone)

    def _occurrence(self, start: datetime) -> Occurrence:
        if self.cron is None:
            assert self.ends_at is not None
            end = self.ends_at
        else:
            end = start + timedelta(seconds=self.duration_seconds or 0)
        return Occurrence(self.id, self.node, start, end, self.reason)

    def current(self, now: datetime) -> Occurrence | None:
        """The occurrence under way at ``now``, if any."""
        if self.cron is None:
            assert self.starts_at is not None
            assert self.ends_at is not None
            on = self.starts_at <= now < self.ends_at
            return self._occurrence(self.starts_at) if on else None
        # A window longer than the cron's period is covered by its latest start.
        slot = self._occurrence(latest_slot(self._timing(), now))
        return slot if now < slot.end else None

    def upcoming(self, now: datetime) -> Occurrence | None:
        """The first occurrence that starts after ``now``, if any."""
        if self.cron is None:
            assert self.starts_at is not None
            return self._occurrence(self.starts_at) if self.starts_at > now else None
        return self._occurrence(next_cron_slot(self._timing(), now))

    def last_end(self, now: datetime) -> datetime | None:
        """When the latest occurrence that is over by ``now`` ended, if any."""
        if self.cron is None:
            assert self.ends_at is not None
            return self.ends_at if self.ends_at <= now else None
        length = timedelta(seconds=self.duration_seconds or 0)
        return latest_slot(self._timing(), now - length) + length

    def describe(self) -> str:
        """'every "0 2 * * SUN" (Europe/Paris) for 2h' or 'from … to …'."""
        if self.cron is None:
            assert self.starts_at is not None
            assert self.ends_at is not None
            return f"from {clock(self.starts_at, None)} to {clock(self.ends_at, None)}"
        return f"every {self.cron!r} ({self.timezone}) for {span(self.duration_seconds or 0)}"


def span(seconds: float) -> str:
    """7200 -> '2h', 5400 -> '1h30m', 90 -> '1m30s'."""
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [
        f"{hours}h" if hours else "",
        f"{minutes}m" if minutes else "",
        f"{secs}s" * (secs > 0),
    ]
    return "".join(parts) or "0s"


def clock(at: datetime, now: datetime | None) -> str:
    """'02:00 UTC' when ``at`` is on ``now``'s UTC day, '2026-12-06 02:00 UTC' otherwise."""
    at = at.astimezone(UTC)
    if now is not None and at.date() == now.astimezone(UTC).date():
        return at.strftime("%H:%M UTC")
    return at.strftime("%Y-%m-%d %H:%M UTC")


def in_maintenance_text(occurrence: Occurrence, now: datetime) -> str:
    """Why a job waits while one of its nodes is in maintenance."""
    return (
        f"node {occurrence.node} in maintenance until {clock(occurrence.end, now)} "
        f"({occurrence.reason})"
    )


def admission_refusal(
    upcoming: Occurrence, now: datetime, estimate_seconds: float | None
) -> str | None:
    """Why a job may not start now because of the node's next window; None when it may.

    With an estimate, the job starts if it ends (estimate times ESTIMATE_MARGIN) before the window
    opens; without one, only if the window is more than UNKNOWN_HORIZON away.
    """
    left = upcoming.start - now
    at = f"node {upcoming.node} maintenance at {clock(upcoming.start, now)}"
    if estimate_seconds is None:
        if left > UNKNOWN_HORIZON:
            return None
        return f"{at}; this job's duration is unknown and the window opens within the hour"
    if timedelta(seconds=estimate_seconds * ESTIMATE_MARGIN) < left:
        return None
    return f"{at}; this job would not finish before it (about {span(estimate_seconds)} needed)"


@dataclass(frozen=True)
class Calendar:
    """Every node's current and next maintenance, computed once for one moment."""

    now: datetime
    current: dict[int, Occurrence]  # node id -> the occurrence under way (the longest)
    upcoming: dict[int, Occurrence]  # node id -> the next occurrence to start
    last_end: datetime | None = None  # when the latest occurrence over by now ended

    @classmethod
    def at(cls, windows: list[tuple[int, Window]], now: datetime) -> Calendar:
        """The calendar of ``(node id, window)`` pairs at ``now``."""
        current: dict[int, Occurrence] = {}
        upcoming: dict[int, Occurrence] = {}
        ends: list[datetime] = []
        for node_id, window in windows:
            if (ended := window.last_end(now)) is not None:
                ends.append(ended)
            on = window.current(now)
            if on is not None and (node_id not in current or on.end > current[node_id].end):
                current[node_id] = on
            nxt = window.upcoming(now)
            if nxt is not None and (node_id not in upcoming or nxt.start < upcoming[node_id].start):
                upcoming[node_id] = nxt
        return cls(now, current, upcoming, max(ends, default=None))

    def blocking(self, *node_ids: int) -> Occurrence | None:
        """The maintenance under way on any of these nodes (the one ending last)."""
        found = [self.current[n] for n in node_ids if n in self.current]
        return max(found, key=lambda o: o.end) if found else None

    def refusal(self, node_ids: tuple[int, ...], estimate_seconds: float | None) -> str | None:
        """Why a job on these nodes may not start before their next windows; None if it may."""
        for node_id in node_ids:
            nxt = self.upcoming.get(node_id)
            if nxt is not None:
                why = admission_refusal(nxt, self.now, estimate_seconds)
                if why is not None:
                    return why
        return None

    def note(self, node_id: int) -> str | None:
        """The node's maintenance in a few words: under way, or the next one within a week."""
        on = self.current.get(node_id)
        if on is not None:
            return f"in maintenance until {clock(on.end, self.now)} ({on.reason})"
        nxt = self.upcoming.get(node_id)
        if nxt is not None and nxt.start - self.now <= NOTED_AHEAD:
            return f"maintenance at {clock(nxt.start, self.now)} ({nxt.reason})"
        return None
