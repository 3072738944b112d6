"""Adaptive polling through real beat and worker processes: a node is read when asked to, not
only at its interval (fixed polling would take up to the 6 s interval here)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from orchestrator.domain.states import JobState
from orchestrator.services.conveyor.control import change_rate, pause_job, resume_job
from tests.workers.conftest import Rig


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    # The plan's SQL runs on both engines in tests/services; one is enough for the processes.
    return f"sqlite:///{tmp_path / 'orchestrator.db'}"


@pytest.mark.rig(settings={"poll_interval": 6.0, "poll_ceiling_intervals": 1.0})
def test_a_pause_and_a_resume_are_seen_at_the_next_tick_not_the_next_interval(rig: Rig) -> None:
    rig.tree("slow", [400_000])
    rig.worker()
    job_id = rig.new_job("slow", options={"target_rate_kbps": 40})  # 80 s at this rate
    rig.wait(lambda: rig.states()[job_id] == JobState.RUNNING, "the first poll", timeout=30)

    for act, state in ((pause_job, JobState.PAUSED), (resume_job, JobState.RUNNING)):
        asked = time.monotonic()
        act(rig.ctx, job_id)
        rig.wait(lambda: rig.states()[job_id] == state, state.value, timeout=30)  # noqa: B023
        assert time.monotonic() - asked < 3.0, state

    change_rate(rig.ctx, job_id, target_rate_kbps=1_000_000)
    rig.assert_converged([job_id])
