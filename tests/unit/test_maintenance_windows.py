"""Maintenance windows in the domain: when they happen, and the admission rule before them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from orchestrator.domain.maintenance import Calendar, Occurrence, Window, admission_refusal, span

PARIS_NIGHTLY = Window(
    id=1,
    node="paris",
    reason="backups",
    cron="30 2 * * *",
    duration_seconds=3600,
    timezone="Europe/Paris",
)


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


def test_a_recurring_window_follows_the_wall_clock_through_clock_changes() -> None:
    # 29 March 2026: Paris skips 02:00-03:00, so there is no 02:30 that night.
    assert PARIS_NIGHTLY.upcoming(utc(2026, 3, 28, 23, 0)) == Occurrence(
        1, "paris", utc(2026, 3, 30, 0, 30), utc(2026, 3, 30, 1, 30), "backups"
    )
    # 25 October 2026: 02:30 happens twice; the window is the first one (00:30 UTC).
    on = PARIS_NIGHTLY.current(utc(2026, 10, 25, 1, 0))
    assert on is not None
    assert (on.start, on.end) == (utc(2026, 10, 25, 0, 30), utc(2026, 10, 25, 1, 30))
    assert PARIS_NIGHTLY.current(utc(2026, 10, 25, 1, 30)) is None  # the end is not inside
    assert PARIS_NIGHTLY.last_end(utc(2026, 10, 25, 1, 45)) == utc(2026, 10, 25, 1, 30)


def test_a_one_off_window_and_the_calendar_of_several() -> None:
    one_off = Window(
        id=2,
        node="paris",
        reason="swap",
        starts_at=utc(2026, 12, 1, 1),
        ends_at=utc(2026, 12, 1, 5),
    )
    assert one_off.current(utc(2026, 12, 1, 0, 59)) is None
    assert one_off.upcoming(utc(2026, 12, 1, 0, 59)) is not None
    assert one_off.upcoming(utc(2026, 12, 1, 1)) is None
    plan = Calendar.at([(7, PARIS_NIGHTLY), (7, one_off)], utc(2026, 12, 1, 1, 45))
    blocking = plan.blocking(3, 7)
    assert blocking is not None
    assert blocking.window_id == 2  # both are on: the one that ends last says until when
    assert plan.note(7) == "in maintenance until 05:00 UTC (swap)"
    assert plan.blocking(3) is None
    assert plan.note(3) is None


def test_the_admission_rule() -> None:
    window = Occurrence(1, "node-b", utc(2026, 12, 1, 2), utc(2026, 12, 1, 4), "r")
    now = utc(2026, 12, 1, 1)
    assert admission_refusal(window, now, None) == (
        "node node-b maintenance at 02:00 UTC; this job's duration is unknown "
        "and the window opens within the hour"
    )
    assert admission_refusal(window, now - timedelta(seconds=1), None) is None
    assert admission_refusal(window, now, 47 * 60) is None  # 47 min x 1.25 < 60 min
    assert admission_refusal(window, now, 49 * 60) == (
        "node node-b maintenance at 02:00 UTC; this job would not finish before it "
        "(about 49m needed)"
    )
    assert admission_refusal(window, utc(2026, 11, 30, 23), 3 * 3600) == (
        "node node-b maintenance at 2026-12-01 02:00 UTC; this job would not finish before it "
        "(about 3h needed)"
    )
    assert (span(5400), span(90), span(0)) == ("1h30m", "1m30s", "0s")
