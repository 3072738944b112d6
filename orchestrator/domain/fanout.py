"""A fan-out job's state, read from its parts (one ordinary job per destination)."""

from __future__ import annotations

from collections.abc import Sequence

from orchestrator.domain.states import SETTLED, JobState


def fanout_state(parts: Sequence[JobState]) -> JobState:
    """The parent's state: running (or paused) while any part is open; once all are settled,
    completed only if every part completed, else the worst of their ends."""
    still_open = [state for state in parts if state not in SETTLED]
    if still_open:
        if all(state is JobState.PAUSED for state in still_open):
            return JobState.PAUSED
        return JobState.RUNNING
    for worst in (JobState.NEEDS_ATTENTION, JobState.FAILED, JobState.CANCELED):
        if worst in parts:
            return worst
    return JobState.COMPLETED


def total(values: Sequence[int | None]) -> int | None:
    """The sum of the parts' figures, or None when any part does not know its own yet."""
    if any(value is None for value in values):
        return None
    return sum(value for value in values if value is not None)
