"""Admission against a node's own session limit: what the node says it allows, and the reason
a job waits when other clients' transfers and ours fill it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# node-api.md §7.1 lists /info settings[] without any session limit, and §7.5 names the
# aspera.conf setting (transfer_manager_max_concurrent_sessions, default 20). The reference is
# silent on whether a node reports it: if /info's settings[] (or capabilities[]) carries one of
# these names with a positive integer, that is the node's limit; otherwise we use max_outbound.
SESSION_LIMIT_NAMES = ("transfer_manager_max_concurrent_sessions", "max_concurrent_sessions")

OVERDUE_INTERVALS = 2  # a count is acted on until this many intervals after its next was due
# A node whose counts keep finding no other client's transfer is asked 2, then 4 intervals
# apart (its spacing doubles this many times): another client's first transfers there are seen
# that much later, and the first count that finds one (or fails) brings it back to every interval.
QUIET_DOUBLINGS = 2


def reported_session_limit(*named: Mapping[str, Any]) -> int | None:
    """The node's session limit from /info's settings or capabilities, when it states one."""
    for values in named:
        for name in SESSION_LIMIT_NAMES:
            value = values.get(name)
            if isinstance(value, bool):
                continue
            try:
                limit = int(str(value).strip())
            except ValueError:
                continue
            if limit > 0:
                return limit
    return None


def count_spacing(every: float, quiet: int) -> float:
    """Seconds from a node's count to its next, when its last ``quiet`` counts found no others."""
    return every * 2.0 ** min(quiet, QUIET_DOUBLINGS)  # quiet itself grows without bound


def count_is_due(since: float, every: float, quiet: int) -> bool:
    """Whether a node counted ``since`` seconds ago is asked in this round (rounds come about
    every interval, so half an interval early is on time)."""
    return since >= count_spacing(every, quiet) - every / 2


def count_usable_for(every: float, quiet: int) -> float:
    """Seconds a count is acted on: until it is ``OVERDUE_INTERVALS`` intervals overdue."""
    return count_spacing(every, quiet) + OVERDUE_INTERVALS * every


def node_full_reason(node: str, others: int | None, ours: int, limit: int) -> str:
    """Why a job waits for a node whose sessions are taken (its own and other clients')."""
    verb = "is" if ours == 1 else "are"
    if others is None:
        return (
            f"{node} is at its session limit ({ours} of {limit} sessions {verb} ours; "
            "other clients' not counted)"
        )
    transfers = "transfer" if others == 1 else "transfers"
    return (
        f"{node} runs {others} {transfers} for other clients; "
        f"{ours} of its {limit} sessions {verb} ours"
    )
