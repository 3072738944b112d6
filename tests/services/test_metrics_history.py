"""/metrics' sums over history: read at every scrape while cheap; once a reading is costly, the
last one is served and a background thread takes the next when it is old for its cost."""

from __future__ import annotations

from sqlalchemy.orm import Session

from orchestrator.services.conveyor.control import cancel_job
from orchestrator.services.views.metrics.history import HistoryCache, HistorySums, read_history
from tests.services.conftest import Stack
from tests.support.processes import wait_for


def test_a_cheap_reading_is_taken_at_every_scrape(stack: Stack) -> None:
    # A timer that stands still: every reading costs 0 s, however busy the cores are.
    cache = HistoryCache(stack.ctx.sessions, timer=lambda: 1000.0)
    job_id = stack.new_job("cheap")

    before = cache.sums()
    cancel_job(stack.ctx, job_id)
    after = cache.sums()

    assert before.ended_jobs["canceled"] == 0
    assert after.ended_jobs["canceled"] == 1


def test_a_costly_reading_is_served_until_old_for_its_cost_then_refreshed_aside(
    stack: Stack,
) -> None:
    clock = [1000.0]
    readings: list[HistorySums] = []

    def costly(session: Session) -> HistorySums:
        clock[0] += 2.0  # this reading "took" 2 s: it is kept for 40 s
        readings.append(read_history(session))
        return readings[-1]

    cache = HistoryCache(stack.ctx.sessions, read=costly, timer=lambda: clock[0])
    job_id = stack.new_job("costly")

    first = cache.sums()
    cancel_job(stack.ctx, job_id)
    clock[0] += 39.0
    still = cache.sums()
    clock[0] += 2.0
    stale = cache.sums()  # returns at once; the new reading is taken in the background
    wait_for(lambda: len(readings) == 2, timeout=30, what="the background reading")
    fresh = cache.sums()

    assert first.ended_jobs["canceled"] == 0
    assert still is first and stale is first
    assert fresh.ended_jobs["canceled"] == 1
    assert len(readings) == 2
