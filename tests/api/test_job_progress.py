"""A job's progress over time through the real app, over real nodes: its bytes per minute land
in its own rows, its page's live parts chart them, and the rows go with the job; long jobs
are charted in wider bars."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from orchestrator.api import render
from orchestrator.db.tables import JobMinuteRow, JobRow
from orchestrator.domain.states import JobState
from orchestrator.services.context import utcnow
from orchestrator.services.conveyor.retention import prune_history
from orchestrator.services.conveyor.throughput import minute_of
from orchestrator.services.views.job_progress import chart_of
from orchestrator.services.views.throughput import Minute
from tests.api.conftest import Api
from tests.api.test_dashboard import sign_in
from tests.support.sim import write_tree
from tests.support.stack import settle

SIZE = 200_000  # at 800 kbps: about 2 s, long enough for a poll to see it half-way


@pytest.fixture
def stack_settings() -> dict[str, Any]:
    return {"history_days": 30.0}


def running_from(moment: datetime) -> Any:
    """A clock that reads ``moment`` now and runs on from there."""
    offset = moment - utcnow()
    return lambda: utcnow() + offset


def test_a_jobs_bytes_over_two_minutes_are_charted_on_its_page_and_go_with_the_job(
    api: Api,
) -> None:
    stack = api.stack
    folder = f"m-{uuid.uuid4().hex[:8]}"
    write_tree(stack.root_a, {f"{folder}/f.bin": b"x" * SIZE})
    first = minute_of(utcnow()) + timedelta(minutes=2)
    stack.ctx.clock = running_from(first)
    job_id = stack.new_job(folder, options={"target_rate_kbps": 800})

    def moved() -> int:
        with stack.ctx.sessions() as session:
            return int(session.scalar(select(JobRow.bytes_transferred).where(JobRow.id == job_id)))

    settle(stack.ctx, stack.tasks, [stack.a_id], until=lambda _: 0 < moved() < SIZE)
    stack.ctx.clock = running_from(first + timedelta(minutes=1))
    states = settle(stack.ctx, stack.tasks, [stack.a_id])
    assert states[job_id] == JobState.COMPLETED

    with stack.ctx.sessions() as session:
        rows = session.execute(
            select(JobMinuteRow.minute, JobMinuteRow.bytes, JobMinuteRow.files)
            .where(JobMinuteRow.job_id == job_id)
            .order_by(JobMinuteRow.minute)
        ).all()
    (m1, early, files1), (m2, late, files2) = rows
    assert (m1, m2) == (first, first + timedelta(minutes=1))
    assert early > 0 and late > 0 and early + late == SIZE
    assert (files1, files2) == (0, 1)

    assert api.client.get(f"/jobs/{job_id}/live").status_code == 401
    sign_in(api, "read")
    live = api.client.get(f"/jobs/{job_id[:8]}/live")
    assert live.status_code == 200, live.text
    assert live.headers["content-security-policy"].startswith("default-src 'none'")
    html = live.text
    assert 'id="summary" data-state="completed"' in html
    assert 'id="actions"' not in html, "a read session gets no forms"
    chart = re.search(r'<section class="card" id="progress">.*?</section>', html, re.S)
    assert chart, html
    titles = re.findall(r"<title>(.*?)</title>", chart.group(0))
    assert titles == [
        f"{first:%H:%M} UTC: {render.size(early)} in 0 file(s), "
        f"{render.rate(early / 60)} on average",
        f"{first + timedelta(minutes=1):%H:%M} UTC: {render.size(late)} in 1 file(s), "
        f"{render.rate(late / 60)} on average",
    ]
    page = api.client.get(f"/jobs/{job_id}").text
    assert chart.group(0) in page, "the page draws the same part its script fetches"
    assert f'data-src="/jobs/{job_id}/live"' in page and "data-parts" in page
    assert api.client.get("/jobs/00000000-0000-0000-0000-000000000000/live").status_code == 404

    stack.ctx.clock = running_from(first + timedelta(days=31))
    assert prune_history(stack.ctx).jobs == 1
    with stack.ctx.sessions() as session:
        left = session.scalars(select(JobMinuteRow).where(JobMinuteRow.job_id == job_id))
        assert left.all() == [], "the job's minutes went with it"


def test_a_long_job_is_charted_in_bars_of_several_minutes_a_short_one_over_ten() -> None:
    created = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
    minutes = [Minute(created + timedelta(minutes=i), 1000, 1) for i in range(180)]
    long = chart_of(
        minutes, created=created, finished=created + timedelta(minutes=179), now=created
    )
    assert (len(long.bars), long.bar_minutes, long.per) == (60, 3, "3 minutes")
    assert {bar.bytes for bar in long.bars} == {3000} and long.bars[0].minute == created
    title = render.job_chart(long).bars[0].title
    assert title == "10:00 to 10:03 UTC: 3.00 KB in 3 file(s), 133 bps on average", title

    short = chart_of(minutes[:1], created=created, finished=None, now=created)
    assert (len(short.bars), short.bar_minutes) == (10, 1)
    assert [bar.bytes for bar in short.bars] == [0] * 9 + [1000], "now at the right edge"
    assert render.job_chart(short).end == "now (UTC)"
