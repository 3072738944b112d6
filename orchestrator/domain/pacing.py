"""When to poll a source node next: the soonest moment one of its transfers may change state.

A running transfer with a rate and a known size is expected to end when its remaining bytes
have moved; the node is polled then, or as late as the last end within one floor after it, so
a burst of transfers that started together costs one poll (never two polls closer than the
floor). A transfer whose end cannot be predicted (no rate, no size, not yet on the node,
waiting, retrying, overdue, or one we asked the node to stop) is polled at the base interval,
as fixed polling would. A paused transfer changes only when asked, so it waits for the
ceiling, which also bounds how late a failure the node decides on its own is seen. When the
expected ends come within one base interval after the ceiling, and nothing else is due
before them, the node is read at them instead: a poll at the ceiling would be followed by the
ends' own poll a moment later (a ceiling of one interval is kept as it is).
"""

from __future__ import annotations

from dataclasses import dataclass

from orchestrator.domain.states import AttemptState


@dataclass(frozen=True)
class Pace:
    """The bounds of the rule, in seconds: floor ≤ base ≤ ceiling."""

    base: float
    floor: float
    ceiling: float


@dataclass(frozen=True)
class OpenTransfer:
    """What the database knows about one open transfer of the node."""

    status: str
    bytes_transferred: int = 0
    bytes_expected: int | None = None
    rate_kbps: float | None = None
    seen_ago: float = 0.0  # seconds since the counters above were read from the node
    check_in: float | None = None  # seconds until a by-id check of it is due
    stopping: bool = False  # we asked the node to cancel it


def expected_end_in(transfer: OpenTransfer) -> float | None:
    """Seconds until a running transfer should end at its rate, or None if unknowable."""
    if transfer.status != AttemptState.RUNNING or transfer.stopping:
        return None
    if not transfer.rate_kbps or transfer.rate_kbps <= 0 or not transfer.bytes_expected:
        return None
    remaining_bits = max(0, transfer.bytes_expected - transfer.bytes_transferred) * 8
    return remaining_bits / (transfer.rate_kbps * 1000) - transfer.seen_ago


def own_due_in(transfer: OpenTransfer, pace: Pace) -> float | None:
    """Seconds until this transfer needs its node polled for a reason of its own (an end it
    cannot predict, a by-id check), or None when only the ceiling bounds it (paused, or its
    end is planned for by ``next_poll_in``)."""
    due = None
    end = expected_end_in(transfer)
    if transfer.status != AttemptState.PAUSED and (end is None or end < 0):
        due = pace.base  # overdue too: its counters are old or it stalled near the end
    if transfer.check_in is not None:
        due = transfer.check_in if due is None else min(due, transfer.check_in)
    return due


def gathered_end(ends: list[float], window: float) -> float | None:
    """When to read the soonest expected end: at the last end within ``window`` after it, so
    one poll sees a burst of transfers that started together (each seen at most that late)."""
    if not ends:
        return None
    first = min(ends)
    return max(end for end in ends if end <= first + window)


def next_poll_in(transfers: list[OpenTransfer], pace: Pace) -> float:
    """Seconds until the node's next poll: its soonest transfer, within [floor, ceiling], or
    its expected ends when only the ceiling comes before them and they follow within one
    interval (a ceiling of one interval is kept as it is)."""
    ends = [end for t in transfers if (end := expected_end_in(t)) is not None and end >= 0]
    own = min((due for t in transfers if (due := own_due_in(t, pace)) is not None), default=None)
    gathered = gathered_end(ends, pace.floor)
    if (
        gathered is not None
        and pace.base < pace.ceiling < gathered <= pace.ceiling + pace.base
        and (own is None or own >= pace.ceiling)
    ):
        return gathered if own is None else min(gathered, own)  # both past the ceiling
    soonest = pace.ceiling if own is None else min(own, pace.ceiling)
    if gathered is not None:
        soonest = min(soonest, gathered)
    return min(max(soonest, pace.floor), pace.ceiling)
