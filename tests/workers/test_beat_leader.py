"""Two beats at once: only the leader sends; the standby takes over after kill -9 of the leader
(real redis-server, celery beat and worker processes, SQLite and PostgreSQL)."""

from __future__ import annotations

import re
import time

import pytest
import redis

from orchestrator.domain.states import JobState
from tests.support.processes import CeleryProcess, wait_for
from tests.workers.conftest import Rig
from workers.leader import LEADER_KEY

SENDS = re.compile(r"Scheduler: Sending due task")  # DEBUG: clockwork is quiet at INFO


def sends(beat: CeleryProcess) -> int:
    return len(SENDS.findall(beat.log_text()))


@pytest.mark.rig(settings={"beat_leader_seconds": 3.0, "log_level": "DEBUG"})
def test_a_standby_beat_sends_nothing_until_the_leader_dies_then_takes_over(rig: Rig) -> None:
    second = rig.processes.beat("beat2")
    rig.worker()
    client = redis.Redis.from_url(rig.redis.url)
    leader_id = wait_for(lambda: client.get(LEADER_KEY), timeout=20, what="a leader").decode()
    beats = [p for p in rig.processes.started if isinstance(p, CeleryProcess) and p.kind == "beat"]
    (leader,) = [b for b in beats if f":{b.pid}:" in leader_id]
    (standby,) = [b for b in beats if b is not leader]
    assert standby is second or leader is second
    ids = rig.jobs(["bl1"], sizes=[2_000])
    rig.wait_until_settled()
    assert sends(leader) > 0
    assert sends(standby) == 0  # it ticked all along, and sent nothing

    leader.kill_group()
    killed = time.monotonic()
    wait_for(lambda: sends(standby) > 0, timeout=20, what="the standby sending")
    took_over = time.monotonic() - killed
    ids += rig.jobs(["bl2"], sizes=[2_000])

    states = rig.wait_until_settled()
    assert all(states[i] == JobState.COMPLETED for i in ids)
    assert took_over < 3.0 + 3.0  # the lock's life, plus a tick and a slow machine's margin
    assert "takes the lead" in standby.log_text()
    rig.assert_converged(ids)
