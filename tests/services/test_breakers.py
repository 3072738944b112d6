"""The per-link circuit breaker: opens on failures, holds, probes, opens again, closes.

The context's clock runs ``skip`` ahead of the real one, so a cool-down ends when the test
moves it on, never by waiting for it.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from orchestrator.db.tables import AlertRow, BreakerRow, JobRow
from orchestrator.domain.states import JobState
from orchestrator.services.events import events_of
from orchestrator.services.views.metrics.collector import _breaker_families
from orchestrator.services.views.metrics.queries import node_names
from orchestrator.settings import Settings
from tests.services.conftest import Stack
from tests.support.alerts import write_alerts_file
from tests.support.sim import write_tree
from tests.support.stack import settle

COOL_DOWN = 60.0


@pytest.fixture
def stack_settings(tmp_path: Any) -> dict[str, Any]:
    alerts = tmp_path / "alerts.yaml"
    write_alerts_file(
        alerts,
        {"ops": {"kind": "webhook", "url": "http://127.0.0.1:9/hook"}},
        node_channels=["ops"],
    )
    return {
        "alerts_file": alerts,
        "breaker_window": 4,
        "breaker_failures": 3,
        "breaker_cool_down_seconds": COOL_DOWN,
        "breaker_cool_down_max_seconds": 2 * COOL_DOWN,
    }


class Clock:
    """The real time plus a skip the test adds to."""

    def __init__(self) -> None:
        self.skip = timedelta()

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.skip


def _breaker(stack: Stack) -> BreakerRow | None:
    with stack.ctx.sessions() as session:
        return session.scalar(select(BreakerRow).where(BreakerRow.scope == "link"))


def _story(stack: Stack, *job_ids: str) -> str:
    with stack.ctx.sessions() as session:
        return "\n".join(e.message for j in job_ids for e in events_of(session, j))


def _open_links(stack: Stack) -> list[tuple[tuple[str, ...], float]]:
    with stack.ctx.sessions() as session:
        links, _ = _breaker_families(session, lambda i: node_names(session)[i])
    return [(tuple(s.labels.values()), s.value) for s in links.samples]


def _created(stack: Stack) -> int:
    return int(stack.admin_a.counters()["transfers_created"])


def test_a_failing_link_opens_holds_probes_and_closes(stack: Stack) -> None:
    clock = Clock()
    stack.ctx.clock = clock
    for name in ("k1", "k2", "k3"):
        write_tree(stack.root_a, {f"{name}/f.bin": name.encode() * 500})
    stack.admin_a.settings(max_retries=0)
    stack.admin_a.fault(kind="fail_transfers", error_code=16, count=0)  # every session fails
    jobs = [stack.new_job(name, max_attempts=10) for name in ("k1", "k2", "k3")]

    def all_waiting(states: dict[str, str]) -> bool:
        row = _breaker(stack)
        if row is None or row.state != "open":
            return False
        with stack.ctx.sessions() as session:
            waiting = session.scalars(select(JobRow.waiting_reason).where(JobRow.id.in_(jobs)))
            return all("paused" in (reason or "") for reason in waiting)

    settle(stack.ctx, stack.tasks, [stack.a_id], until=all_waiting, timeout=20)

    # Open: every job waits and says why; one alert; the gauge is up; the opener's event.
    opened = _created(stack)
    with stack.ctx.sessions() as session:
        reasons = set(session.scalars(select(JobRow.waiting_reason).where(JobRow.id.in_(jobs))))
    (reason,) = reasons
    assert re.fullmatch(
        r"link node-a → node-b paused after [34] of [34] attempts failed; "
        r"next probe at \d\d:\d\d:\d\d UTC",
        reason or "",
    ), reason
    story = _story(stack, *jobs)
    assert "attempt 2 after back-off" in story, "a network failure backs off, as before"
    assert re.search(r"link node-a → node-b paused after 3 of 3 attempts failed", story)
    assert _open_links(stack) == [(("node-a", "node-b"), 1.0)]
    with stack.ctx.sessions() as session:
        (alert,) = session.scalars(select(AlertRow).where(AlertRow.kind == "link_breaker_open"))
    assert alert.payload["event"] == "link.paused"

    # Held: rounds of polls, sweeps and dispatches post nothing on the link.
    rounds = iter(range(5))
    settle(stack.ctx, stack.tasks, [stack.a_id], until=lambda _: next(rounds) == 4)
    assert _created(stack) == opened

    # The cool-down ends: one probe goes, fails, and the pause doubles.
    clock.skip += timedelta(seconds=COOL_DOWN + 1)
    settle(
        stack.ctx,
        stack.tasks,
        [stack.a_id],
        until=lambda _: "the probe of link node-a → node-b failed" in _story(stack, *jobs),
        timeout=20,
    )
    assert _created(stack) == opened + 1
    row = _breaker(stack)
    assert row is not None and row.state == "open" and row.cool_down_seconds == 2 * COOL_DOWN
    assert "admitted as the probe of link node-a → node-b" in _story(stack, *jobs)

    # The link heals: the next probe succeeds, the breaker closes and everything completes.
    stack.admin_a.clear_faults()
    clock.skip += timedelta(seconds=2 * COOL_DOWN + 1)
    states = settle(stack.ctx, stack.tasks, [stack.a_id], timeout=20)

    assert all(states[j] == JobState.COMPLETED for j in jobs)
    assert "link node-a → node-b closed: this job got through" in _story(stack, *jobs)
    row = _breaker(stack)
    assert row is not None and row.state == "closed"
    assert _open_links(stack) == []
    with stack.ctx.sessions() as session:
        assert len(session.scalars(select(AlertRow)).all()) == 1, "one alert per opening"


def test_a_breaker_that_could_never_open_is_refused_at_start(tmp_path: Any) -> None:
    with pytest.raises(ValueError, match=r"ORCH_BREAKER_FAILURES \(9\) must not exceed"):
        Settings(data_dir=tmp_path, breaker_window=8, breaker_failures=9)
