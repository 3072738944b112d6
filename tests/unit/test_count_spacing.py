"""How often a node's other-client transfers are counted: the back-off on quiet nodes."""

from __future__ import annotations

import pytest

from orchestrator.domain.admission import count_is_due, count_spacing, count_usable_for

EVERY = 10.0


@pytest.mark.parametrize(("quiet", "spacing"), [(0, 10.0), (1, 20.0), (2, 40.0), (3, 40.0)])
def test_each_count_that_finds_nobody_doubles_the_spacing_up_to_four_intervals(
    quiet: int, spacing: float
) -> None:
    assert count_spacing(EVERY, quiet) == spacing
    assert count_usable_for(EVERY, quiet) == spacing + 2 * EVERY


def test_a_node_quiet_for_days_keeps_the_longest_spacing() -> None:
    # One count every 4 intervals for weeks: the streak grows without bound.
    assert count_spacing(EVERY, 5_000) == 40.0
    assert count_is_due(40.0, EVERY, 5_000)


def test_a_round_a_little_early_counts_as_on_time() -> None:
    # Beat's rounds come about every interval: a count 19.9 s after the last one is due.
    assert count_is_due(19.9, EVERY, 1)
    assert not count_is_due(14.9, EVERY, 1)
