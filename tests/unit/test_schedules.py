"""Schedule specs and slot maths: cron and intervals, time zones, DST, collapsing missed slots."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from orchestrator.domain.schedules import (
    ScheduleSpec,
    ScheduleTiming,
    due_slot,
    latest_slot,
    next_slot,
    slots_between,
)

BASE = {
    "id": "media-hourly",
    "source_node": "node-a",
    "source_paths": ["media/daily"],
    "destination_node": "node-b",
    "destination_path": "replicas/media",
}
DAY = datetime(2026, 11, 23, tzinfo=UTC)


def problem(**fields: object) -> tuple[str, str]:
    """The field and message of the first validation error."""
    with pytest.raises(ValidationError) as caught:
        ScheduleSpec.model_validate({**BASE, **fields})
    first = caught.value.errors()[0]
    return ".".join(str(p) for p in first["loc"]), first["msg"]


def test_an_hourly_cron_has_24_slots_a_day() -> None:
    timing = ScheduleTiming(cron="0 * * * *")
    slots = slots_between(timing, DAY - timedelta(seconds=1), DAY + timedelta(hours=23, minutes=59))
    assert len(slots) == 24
    assert slots[0] == DAY and slots[-1] == DAY + timedelta(hours=23)


def test_cron_follows_the_time_zone_across_daylight_saving() -> None:
    timing = ScheduleTiming(cron="30 2 * * *", timezone="Europe/Paris")
    # 2026-03-29: clocks jump from 02:00 to 03:00 in Paris; 02:30 does not exist that day.
    slots = slots_between(
        timing, datetime(2026, 3, 27, tzinfo=UTC), datetime(2026, 3, 31, tzinfo=UTC)
    )
    assert [s.isoformat() for s in slots][:2] == [
        "2026-03-27T01:30:00+00:00",  # 02:30 CET
        "2026-03-28T01:30:00+00:00",
    ]
    assert slots[-1] == datetime(2026, 3, 30, 0, 30, tzinfo=UTC)  # 02:30 CEST
    assert all(s.tzinfo == UTC for s in slots)


def test_interval_slots_sit_on_multiples_of_the_interval() -> None:
    timing = ScheduleTiming(interval_seconds=900)
    after = datetime(2026, 11, 23, 10, 7, 13, tzinfo=UTC)
    assert next_slot(timing, after) == datetime(2026, 11, 23, 10, 15, tzinfo=UTC)
    assert latest_slot(timing, after) == datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


def test_missed_slots_collapse_into_the_newest() -> None:
    timing = ScheduleTiming(cron="0 * * * *")
    done = DAY + timedelta(hours=5)
    now = DAY + timedelta(hours=8, minutes=20)  # 06:00, 07:00 and 08:00 were missed
    assert due_slot(timing, done, now) == DAY + timedelta(hours=8)
    assert due_slot(timing, DAY + timedelta(hours=8), now) is None


@given(
    step=st.integers(min_value=1, max_value=7 * 24 * 3600),
    start=st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1)),
)
def test_interval_slots_are_ordered_and_consistent(step: int, start: datetime) -> None:
    timing = ScheduleTiming(interval_seconds=step)
    at = start.replace(tzinfo=UTC)
    following = next_slot(timing, at)
    latest = latest_slot(timing, at)
    assert latest <= at < following
    assert (following - latest).total_seconds() == step
    assert latest_slot(timing, following) == following


@given(
    minute=st.integers(0, 59),
    hour=st.integers(0, 23),
    start=st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2040, 1, 1)),
    zone=st.sampled_from(["UTC", "Europe/Paris", "America/New_York", "Asia/Kolkata"]),
)
def test_cron_next_and_latest_bracket_now(
    minute: int, hour: int, start: datetime, zone: str
) -> None:
    timing = ScheduleTiming(cron=f"{minute} {hour} * * *", timezone=zone)
    at = start.replace(tzinfo=UTC)
    assert latest_slot(timing, at) <= at < next_slot(timing, at)


def test_schedules_are_incremental_by_default() -> None:
    spec = ScheduleSpec.model_validate({**BASE, "cron": "0 * * * *"})
    assert spec.options.overwrite == "diff"
    assert spec.overlap == "skip"
    rated = ScheduleSpec.model_validate(
        {**BASE, "cron": "0 * * * *", "options": {"target_rate_kbps": 1000}}
    )
    assert rated.options.overwrite == "diff"
    told = ScheduleSpec.model_validate(
        {**BASE, "cron": "0 * * * *", "options": {"overwrite": "always"}}
    )
    assert told.options.overwrite == "always"
    job = spec.job_spec("schedule")
    assert job.labels == {"schedule": "media-hourly", "trigger": "schedule"}
    assert job.options.overwrite == "diff"


@pytest.mark.parametrize(
    ("fields", "field", "words"),
    [
        ({"cron": "61 * * * *"}, "cron", "not a cron expression"),
        ({"cron": "every hour"}, "cron", "not a cron expression"),
        ({"cron": "0 * * * * *"}, "cron", "five fields"),
        ({"interval_seconds": 0}, "interval_seconds", "greater than or equal to 1"),
        ({"interval_seconds": -5}, "interval_seconds", "greater than or equal to 1"),
        ({"cron": "0 * * * *", "timezone": "Mars/Olympus"}, "timezone", "IANA time zone"),
        ({"cron": "0 * * * *", "source_paths": ["../etc"]}, "source_paths", "'..'"),
        ({"cron": "0 * * * *", "destination_path": "a/../../b"}, "destination_path", "'..'"),
        ({"cron": "0 * * * *", "id": "Has Spaces"}, "id", "pattern"),
        ({"cron": "0 * * * *", "overlap": "sometimes"}, "overlap", "'skip' or 'queue'"),
        ({"cron": "0 0 31 2 *"}, "cron", "never fires"),
        ({"cron": "0 * * * *", "labels": {f"k{n}": "v" for n in range(19)}}, "labels", "18"),
        ({"cron": "0 * * * *", "interval_seconds": 60}, "interval_seconds", "exactly one of cron"),
        ({}, "interval_seconds", "exactly one of cron"),
    ],
)
def test_bad_schedules_name_the_field(fields: dict[str, object], field: str, words: str) -> None:
    where, message = problem(**fields)
    assert where == field
    assert words in message


def test_the_example_replications_file_is_valid() -> None:
    from pathlib import Path

    from orchestrator.services.schedules.config_file import load_file

    example = Path(__file__).parents[2] / "config" / "replications.example.yaml"
    assert [s.id for s in load_file(example)] == ["media-hourly", "archive-nightly"]


def tick_every_five_minutes(
    timing: ScheduleTiming, start: datetime, end: datetime
) -> list[datetime]:
    """The slots a beat ticking every five minutes would run between start and end."""
    done, now, runs = start, start, []
    while now < end:
        now += timedelta(minutes=5)
        slot = due_slot(timing, done, now)
        if slot is not None:
            runs.append(slot)
            done = slot
    return runs


@pytest.mark.parametrize("zone", ["Europe/Paris", "America/New_York", "Australia/Lord_Howe"])
@pytest.mark.parametrize("cron", ["0 * * * *", "*/30 * * * *", "30 2 * * *", "30 1 * * *"])
@pytest.mark.parametrize(
    "day", [datetime(2026, 3, 27, tzinfo=UTC), datetime(2026, 10, 23, tzinfo=UTC),
            datetime(2026, 3, 6, tzinfo=UTC), datetime(2026, 10, 30, tzinfo=UTC),
            datetime(2026, 4, 3, tzinfo=UTC)],
)  # fmt: skip
def test_ticks_across_clock_changes_run_exactly_the_listed_slots(
    zone: str, cron: str, day: datetime
) -> None:
    timing = ScheduleTiming(cron=cron, timezone=zone)
    end = day + timedelta(days=4)
    listed = slots_between(timing, day, end)
    assert tick_every_five_minutes(timing, day, end) == listed
    assert listed == sorted(set(listed))


def test_wall_clock_policy_at_the_clock_changes() -> None:
    paris = ScheduleTiming(cron="30 2 * * *", timezone="Europe/Paris")
    # Fall back (2026-10-25): 02:30 happens twice; it runs once, the first time (CEST).
    autumn = slots_between(
        paris, datetime(2026, 10, 24, 12, tzinfo=UTC), datetime(2026, 10, 26, 12, tzinfo=UTC)
    )
    assert autumn == [
        datetime(2026, 10, 25, 0, 30, tzinfo=UTC),
        datetime(2026, 10, 26, 1, 30, tzinfo=UTC),
    ]
    hourly = ScheduleTiming(cron="0 * * * *", timezone="Europe/Paris")
    fall_day = slots_between(  # 23:30 on the 24th to 23:30 on the 25th, Paris time
        hourly,
        datetime(2026, 10, 24, 21, 30, tzinfo=UTC),
        datetime(2026, 10, 25, 22, 30, tzinfo=UTC),
    )
    assert len(fall_day) == 24  # 25 real hours, 24 wall-clock hours: 02:00 runs once


@given(
    cron=st.sampled_from(
        ["* * * * *", "*/7 * * * *", "15,45 */2 * * *", "0 0 * * 1", "59 23 31 * *"]
    ),
    at=st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2040, 1, 1)),
    zone=st.sampled_from(["UTC", "Europe/Paris", "America/New_York", "Australia/Lord_Howe"]),
)
def test_latest_and_next_slots_are_neighbours(cron: str, at: datetime, zone: str) -> None:
    timing = ScheduleTiming(cron=cron, timezone=zone)
    moment = at.replace(tzinfo=UTC)
    latest, following = latest_slot(timing, moment), next_slot(timing, moment)
    assert latest <= moment < following
    assert next_slot(timing, latest) == following  # nothing in between was skipped
    assert latest_slot(timing, following) == following
