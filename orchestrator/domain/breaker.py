"""Circuit breakers: when a link (or a destination) stops taking new work, and what it says.

A breaker is closed, open (no new submission until ``probe_at``) or probing (one job let
through; its success closes the breaker, its failure opens it again for twice as long,
capped). Link breakers open when most recent attempts on the link failed; destination holds
open on a full disk. The state lives in the database (``breakers`` table).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

SUCCESS = "s"
FAILURE = "f"


class Scope(StrEnum):
    """What a breaker guards."""

    LINK = "link"  # one source node → destination node pair
    DESTINATION = "destination"  # every job to one destination node


class BreakerState(StrEnum):
    """Where a breaker is."""

    CLOSED = "closed"
    OPEN = "open"
    PROBING = "probing"


@dataclass(frozen=True, slots=True)
class BreakerPolicy:
    """When a link breaker opens and how long it stays open."""

    window: int = 8
    failures: int = 5
    cool_down_seconds: float = 60.0
    cool_down_max_seconds: float = 900.0

    def trips(self, outcomes: str) -> bool:
        """Whether the recent outcomes (oldest first) open the breaker."""
        return outcomes[-self.window :].count(FAILURE) >= self.failures

    def next_cool_down(self, previous: float | None) -> float:
        """The first cool-down, or twice the previous one, capped."""
        if previous is None:
            return self.cool_down_seconds
        return min(previous * 2, self.cool_down_max_seconds)


def remember(outcomes: str, outcome: str, window: int) -> str:
    """The outcomes with one more, keeping the last ``window``."""
    return (outcomes + outcome)[-window:]


def key_of(scope: Scope, source_id: int | None, destination_id: int) -> str:
    """The breaker's primary key: "link:1:2" or "destination:2"."""
    if scope is Scope.LINK:
        return f"link:{source_id}:{destination_id}"
    return f"destination:{destination_id}"


def clock(at: datetime) -> str:
    """A time as the waiting reasons print it: "12:04:10 UTC"."""
    return at.strftime("%H:%M:%S UTC")


def link_reason(
    source: str, destination: str, outcomes: str, probe_at: datetime, probe_job: str | None
) -> str:
    """Why a job on a paused link waits."""
    failed = outcomes.count(FAILURE)
    text = f"link {source} → {destination} paused after {failed} of {len(outcomes)} attempts failed"
    if probe_job is not None:
        return text + f"; job {probe_job[:8]} is probing it"
    return text + f"; next probe at {clock(probe_at)}"


def hold_reason(destination: str, why: str, probe_at: datetime, probe_job: str | None) -> str:
    """Why a job to a held destination waits."""
    text = f"destination node {destination} is held: {why}"
    if probe_job is not None:
        return text + f"; job {probe_job[:8]} is probing it (or: nodes resume {destination})"
    return text + f"; next probe at {clock(probe_at)} (or: nodes resume {destination})"


def probe_due(state: BreakerState, probe_at: datetime, probe_alive: bool, now: datetime) -> bool:
    """Whether a job may go through now as the breaker's probe."""
    if state is BreakerState.PROBING:
        return not probe_alive  # the probe ended without a verdict (canceled, failed): another
    return state is BreakerState.OPEN and now >= probe_at


def cool_down(seconds: float) -> timedelta:
    """Seconds as a timedelta."""
    return timedelta(seconds=seconds)
