"""The job transition table and the node status → job state map."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestrator.domain.states import (
    TERMINAL_STATES,
    TRANSITIONS,
    JobState,
    can_move,
    state_for_transfer,
)
from orchestrator.domain.transfers import TransferFailure, TransferSnapshot, TransferStatus


def snap(status: TransferStatus, code: int | None = None, text: str = "") -> TransferSnapshot:
    error = TransferFailure(code=code, text=text) if code is not None else None
    return TransferSnapshot(remote_id="t", status=status, error=error)


def test_every_state_has_a_row() -> None:
    assert set(TRANSITIONS) == set(JobState)


def test_completed_and_canceled_absorb_and_failed_only_goes_back_to_the_queue() -> None:
    assert TRANSITIONS[JobState.COMPLETED] == frozenset()
    assert TRANSITIONS[JobState.CANCELED] == frozenset()
    assert TRANSITIONS[JobState.FAILED] == {JobState.QUEUED}


@given(st.lists(st.sampled_from(list(JobState)), max_size=30))
def test_completed_is_reached_only_through_a_state_that_holds_a_transfer(
    path: list[JobState],
) -> None:
    state = JobState.QUEUED
    for target in path:
        if not can_move(state, target):
            continue
        if target is JobState.COMPLETED and state is not JobState.COMPLETED:
            assert state.holds_a_transfer or state is JobState.NEEDS_ATTENTION
        state = target


@pytest.mark.parametrize(
    ("snapshot", "attempts_left", "expected"),
    [
        (snap(TransferStatus.WAITING), True, None),
        (snap(TransferStatus.UNKNOWN), True, None),
        (snap(TransferStatus.RUNNING), True, JobState.RUNNING),
        (snap(TransferStatus.RETRYING, 16), True, JobState.RUNNING),
        (snap(TransferStatus.PAUSED), True, JobState.PAUSED),
        (snap(TransferStatus.COMPLETED), True, JobState.COMPLETED),
        (snap(TransferStatus.CANCELED), True, JobState.CANCELED),
        (snap(TransferStatus.FAILED, 16), True, JobState.RETRY_WAIT),
        (snap(TransferStatus.FAILED, 16), False, JobState.FAILED),
        (snap(TransferStatus.FAILED, 19), True, JobState.FAILED),
        (snap(TransferStatus.FAILED, 14, "Target address not available"), True, JobState.FAILED),
        (snap(TransferStatus.FAILED, 0), True, JobState.NEEDS_ATTENTION),
        (snap(TransferStatus.FAILED), True, JobState.NEEDS_ATTENTION),
    ],
)
def test_state_for_transfer(
    snapshot: TransferSnapshot, attempts_left: bool, expected: JobState | None
) -> None:
    assert state_for_transfer(snapshot, attempts_left=attempts_left) is expected


def test_terminal_states() -> None:
    assert {s for s in JobState if s.is_terminal} == TERMINAL_STATES
