"""Beat's schedule: its messages may wait in a busy queue for a while and still run."""

from __future__ import annotations

from pathlib import Path

from orchestrator.settings import Settings
from orchestrator.taskqueue import VISIBILITY_TIMEOUT, beat_schedule


def test_beat_messages_outlive_several_intervals_of_queue_wait(tmp_path: Path) -> None:
    # Found by the soak (seed 21, 600 jobs, PostgreSQL): each message expired after one interval,
    # the busy default queue stayed more than a second behind, and every sweep was dropped unrun:
    # none ran for 73 s, and jobs a killed worker left SUBMITTING waited 116 s, not the lease.
    # The polls fanned out from poll-all-nodes take the same expiry (workers/tasks/polling.py).
    settings = Settings(
        data_dir=tmp_path, poll_interval=0.5, sweep_interval=1.0, replication_tick_seconds=5.0
    )
    schedule = beat_schedule(settings)
    assert set(schedule) == {"poll-all-nodes", "sweep", "replication-tick"}
    for name, entry in schedule.items():
        expires = entry["options"]["expires"]
        assert 5 * entry["schedule"] <= expires < VISIBILITY_TIMEOUT, name
