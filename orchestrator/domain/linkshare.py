"""Live rate allocation on a link with a budget: deadlines first, the rest by priority weight.

Each running transfer of the link is a claim. Claims with a deadline are served first, the
highest priority first (then the earliest deadline): each gets the rate its deadline needs
(bytes left over the time left, with a small margin), as far as the budget goes. What is left
is shared by every claim in proportion to its priority weight (20 priority points double a
share), never above a claim's own target rate. A claim left with nothing is paused: the
deadlines of higher-priority jobs need the whole link, or all of it but a trickle (under
``DEADLINE_ROOM`` of it, which the deadlines then take too: a transfer resumed at a few kbps
only to be paused again is two PUTs for nothing). Shares are whole kbps and their sum never
exceeds the budget.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from orchestrator.domain import units
from orchestrator.domain.deadlines import clock

NEED_MARGIN = 1.05  # a deadline's rate is asked with this margin (progress is read by polls)
MOVE_FRACTION = 0.05  # a share is applied again only when it moves by more than this
PRIORITY_DOUBLING = 20.0  # priority points that double a claim's weight
DEADLINE_ROOM = 0.05  # deadlines leaving less than this fraction of the link pause the rest


@dataclass(frozen=True)
class Claim:
    """One transfer on the link as the allocator sees it."""

    key: str  # the job id
    priority: int
    bytes_left: int | None  # None: its size is not known yet
    deadline: datetime | None
    cap_kbps: int | None = None  # the job's own target rate, when it asked for one


@dataclass(frozen=True)
class Share:
    """A claim's rate on the link (0: paused) and the reason, as a person reads it."""

    kbps: int
    need_kbps: int | None  # the rate its deadline needs; None without a deadline to meet
    why: str

    @property
    def paused(self) -> bool:
        """Whether the claim gets nothing and its transfer should be paused."""
        return self.kbps <= 0


def weight(priority: int) -> float:
    """A claim's weight in the shared part: 1 at priority 0, doubling every 20 points."""
    return float(2.0 ** (priority / PRIORITY_DOUBLING))


def need_kbps(bytes_left: int | None, deadline: datetime | None, now: datetime) -> int | None:
    """The rate (kbps, rounded up) that moves ``bytes_left`` by ``deadline``; None when there
    is no deadline to meet: none set, size unknown, or already passed (then it shares by
    priority like the others)."""
    if deadline is None or bytes_left is None:
        return None
    seconds = (deadline - now).total_seconds()
    if seconds <= 0:
        return None
    # bits per millisecond is kbps; under a millisecond left must not round to zero
    return max(1, math.ceil(bytes_left * 8 * NEED_MARGIN / (seconds * 1000)))


def moved_enough(applied: int | None, wanted: int) -> bool:
    """Whether a new share differs enough from the applied one to send it to the node."""
    if applied is None:
        return True
    if applied <= 0 or wanted <= 0:
        return applied != wanted
    return abs(wanted - applied) > applied * MOVE_FRACTION


def _room(claim: Claim, given: int) -> float:
    return float("inf") if not claim.cap_kbps else max(0, claim.cap_kbps - given)


def _fill(left: float, claims: Sequence[Claim], given: dict[str, int]) -> dict[str, float]:
    """Weighted max-min sharing of ``left`` kbps among ``claims``, within their caps."""
    extra: dict[str, float] = {}
    open_claims = [c for c in claims if _room(c, given[c.key]) > 0]
    while open_claims and left > 0:
        level = left / sum(weight(c.priority) for c in open_claims)
        capped = {
            c.key for c in open_claims if weight(c.priority) * level >= _room(c, given[c.key])
        }
        if not capped:
            for claim in open_claims:
                extra[claim.key] = weight(claim.priority) * level
            return extra
        for claim in open_claims:
            if claim.key in capped:
                extra[claim.key] = _room(claim, given[claim.key])
                left -= extra[claim.key]
        open_claims = [c for c in open_claims if c.key not in capped]
    return extra


def _fill_into(left: float, claims: Sequence[Claim], given: dict[str, int]) -> None:
    """Add each claim's part of ``left`` to ``given``, in whole kbps rounded down."""
    for key, kbps in _fill(left, claims, given).items():
        given[key] += int(kbps)


def allocate(budget_kbps: int, claims: Sequence[Claim], now: datetime) -> dict[str, Share]:
    """Each claim's share of a link's ``budget_kbps`` (see the module's docstring)."""
    given = {c.key: 0 for c in claims}
    needs = {c.key: need_kbps(c.bytes_left, c.deadline, now) for c in claims}
    left = budget_kbps
    by_urgency = sorted(
        (c for c in claims if needs[c.key] is not None),
        key=lambda c: (-c.priority, c.deadline, c.key),
    )
    for claim in by_urgency:
        want = int(min(needs[claim.key] or 0, _room(claim, 0)))
        given[claim.key] = min(want, left)
        left -= given[claim.key]
    deadline_kbps = budget_kbps - left
    if 0 < left < budget_kbps * DEADLINE_ROOM:
        _fill_into(left, by_urgency, given)
        left = budget_kbps - sum(given.values())
        if any(_room(c, given[c.key]) > 0 for c in by_urgency):
            left = 0  # the deadlines took the trickle; what rounding leaves stays unused
        else:  # all held to their own targets: the others share what is left after them
            deadline_kbps = budget_kbps - left
    _fill_into(left, claims, given)
    shares = {}
    for claim in claims:
        kbps = given[claim.key]
        shares[claim.key] = Share(
            kbps,
            needs[claim.key],
            _why(claim, kbps, needs[claim.key], budget_kbps, deadline_kbps, now),
        )
    return shares


def _why(
    claim: Claim, kbps: int, need: int | None, budget: int, deadlines: int, now: datetime
) -> str:
    """Why this share: the deadline it needs, or its priority's share of what deadlines left."""
    of_link = f"of the link's {units.bitrate(budget)}"
    if kbps <= 0 and deadlines >= budget:
        return (
            f"paused: deadlines of higher-priority jobs need the whole link's "
            f"{units.bitrate(budget)}"
        )
    if kbps <= 0 and deadlines > budget * (1 - DEADLINE_ROOM):
        return (
            f"paused: deadlines of higher-priority jobs need {units.bitrate(deadlines)} "
            f"{of_link}, too little is left to share"
        )
    if kbps <= 0:
        return f"paused: its share at priority {claim.priority} is under 1 kbps {of_link}"
    if need is not None and claim.deadline is not None:
        due = clock(claim.deadline, now)
        if kbps >= need:
            return f"{units.bitrate(kbps)} {of_link}: deadline {due} needs {units.bitrate(need)}"
        return (
            f"{units.bitrate(kbps)} {of_link}: deadline {due} needs {units.bitrate(need)}, "
            f"more than higher-priority deadlines leave it"
        )
    after = f" after deadlines took {units.bitrate(deadlines)}" if deadlines else ""
    return f"{units.bitrate(kbps)} {of_link}: its share at priority {claim.priority}{after}"
