"""The next-poll rule's edges: a burst read in one poll, and ends it can no longer predict."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from orchestrator.domain.pacing import OpenTransfer, Pace, next_poll_in

PACE = Pace(base=2.0, floor=0.5, ceiling=6.0)


def ending_in(seconds: float, **changes: Any) -> OpenTransfer:
    """A running transfer at 1,000 kbps that ends in ``seconds``, seen just now."""
    left = int(seconds * 1000 * 1000 / 8)
    running = OpenTransfer("running", 10**6 - left, bytes_expected=10**6, rate_kbps=1000.0)
    return replace(running, **changes)


def test_a_burst_of_ends_is_read_by_one_poll_after_the_last_of_it() -> None:
    burst = [ending_in(1.0), ending_in(1.2), ending_in(1.4), ending_in(1.9)]
    assert next_poll_in(burst, PACE) == 1.4  # 1.9 is past the floor's window: the next poll's


def test_an_end_it_cannot_predict_falls_back_to_the_base_interval() -> None:
    overdue = ending_in(
        3.0, seen_ago=4.0
    )  # should have ended a second ago: a stall, or old counters
    canceling = ending_in(0.8, stopping=True)
    assert next_poll_in([overdue, ending_in(5.0)], PACE) == PACE.base
    assert next_poll_in([canceling], PACE) == PACE.base
    assert next_poll_in([ending_in(0.1)], PACE) == PACE.floor


def test_ends_just_past_the_ceiling_are_read_at_them_not_twice() -> None:
    just_past = [ending_in(7.0), ending_in(7.3), ending_in(7.8)]
    assert next_poll_in(just_past, PACE) == 7.3  # the ceiling's poll would come 1 s before
    assert next_poll_in([ending_in(PACE.ceiling + PACE.base + 0.1)], PACE) == PACE.ceiling
    assert next_poll_in([*just_past, ending_in(3.0, seen_ago=4.0)], PACE) == PACE.base
    paused = ending_in(7.0, status="paused")
    assert next_poll_in([paused, ending_in(7.5)], PACE) == 7.5
    # Read no later than one interval past the ceiling, even for the burst's last end.
    assert next_poll_in([ending_in(7.9), ending_in(8.3)], PACE) == PACE.ceiling


def test_the_ends_past_the_ceiling_never_delay_what_is_due_for_its_own_reasons() -> None:
    # From the review: a by-id check due just after the ceiling came after the ends, and a
    # ceiling of one interval (fixed polling's bound) let unpredictable transfers wait.
    checked = ending_in(30.0, check_in=6.2)
    assert next_poll_in([checked, ending_in(7.9)], PACE) == 6.2
    one_interval = Pace(base=2.0, floor=0.5, ceiling=2.0)
    assert next_poll_in([ending_in(2.5)], one_interval) == one_interval.ceiling
    for own_reason in (ending_in(0.8, stopping=True), ending_in(1.0, status="waiting")):
        assert next_poll_in([own_reason, ending_in(3.5)], one_interval) == 2.0
