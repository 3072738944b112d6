"""The deadline estimator: a link's EMA, a job's finish, and what the caller is told."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestrator.domain.deadlines import (
    Admission,
    BadDeadline,
    eta_moved,
    finish_at,
    fold_rates,
    lateness,
    next_rate,
    parse_deadline,
    transfer_rate,
)

NOW = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)
rates = st.floats(min_value=1.0, max_value=1e10, allow_nan=False)


@given(previous=st.one_of(st.none(), rates), samples=st.lists(rates, min_size=1, max_size=20))
def test_one_folded_write_equals_one_update_per_transfer(
    previous: float | None, samples: list[float]
) -> None:
    expected = previous
    for sample in samples:
        expected = next_rate(expected, sample)
    fold = fold_rates(samples)
    folded = fold.first if previous is None else previous * fold.keep + fold.add
    assert folded == pytest.approx(expected, rel=1e-9)
    seen = [*samples, previous or samples[0]]  # an average stays within what it averages
    assert min(seen) * (1 - 1e-9) <= folded <= max(seen) * (1 + 1e-9)


@given(
    rate=rates,
    ahead=st.integers(min_value=0, max_value=10**15),
    own=st.one_of(st.none(), st.integers(min_value=0, max_value=10**15)),
)
def test_more_work_never_finishes_sooner_and_no_rate_is_always_feasible(
    rate: float, ahead: int, own: int | None
) -> None:
    deadline = NOW + timedelta(hours=1)
    job = Admission("a → b", deadline, rate, ahead, own)
    more = Admission("a → b", deadline, rate, ahead + 1000, own)
    eta, later = job.eta(NOW), more.eta(NOW)
    assert eta is not None and later is not None and eta <= later
    assert job.feasible(NOW) == (eta <= deadline)
    assert (job.warning(NOW) is None) == job.feasible(NOW)
    assert Admission("a → b", deadline, None, ahead, own).feasible(NOW)


def test_the_warning_names_the_rate_the_work_and_both_times() -> None:
    late = Admission("a → b", NOW + timedelta(hours=1), 10_000_000.0, 58 * 10**9, 2 * 10**9)
    assert late.warning(NOW) == (  # 60 GB at 10 MB/s: 6000 s
        "at the link's measured 80.0 Mbps and 60.0 GB ahead, this job would finish about "
        "03:40 UTC, after its deadline 03:00 UTC"
    )
    unknown = Admission("a → b", NOW + timedelta(minutes=1), 10_000_000.0, 12 * 10**9, None)
    assert "12.0 GB ahead (its own size not known yet)" in (unknown.warning(NOW) or "")
    blind = Admission("a → b", NOW + timedelta(minutes=1), None, 0, None)
    assert blind.warning(NOW) == "no measured throughput for a → b yet; the deadline is not checked"
    tomorrow = Admission("a → b", NOW + timedelta(minutes=1), 1.0, 86400 * 2, 0)
    assert "finish about 2026-12-03 02:00 UTC" in (tomorrow.warning(NOW) or "")


def test_deadlines_from_durations_and_zoned_times() -> None:
    assert parse_deadline("2h", NOW) == NOW + timedelta(hours=2)
    assert parse_deadline("90m", NOW) == NOW + timedelta(minutes=90)
    assert parse_deadline("1.5d", NOW) == NOW + timedelta(hours=36)
    assert parse_deadline("2026-12-01T06:00Z", NOW) == datetime(2026, 12, 1, 6, tzinfo=UTC)
    with pytest.raises(BadDeadline, match="add the time zone"):
        parse_deadline("2026-12-01T06:00", NOW)
    with pytest.raises(BadDeadline, match="a duration"):
        parse_deadline("tomorrow", NOW)


def test_rates_etas_and_lateness() -> None:
    assert transfer_rate(1000, NOW, NOW + timedelta(seconds=2)) == 500
    assert transfer_rate(1000, NOW, NOW + timedelta(seconds=0.1)) is None  # latency, not rate
    assert transfer_rate(0, NOW, NOW + timedelta(seconds=2)) is None
    assert finish_at(NOW, 100.0, 1000) == NOW + timedelta(seconds=10)
    assert finish_at(NOW, None, 1000) is None
    assert eta_moved(None, NOW) and not eta_moved(NOW, NOW + timedelta(seconds=5))
    assert eta_moved(NOW, NOW + timedelta(seconds=6))
    assert lateness(NOW + timedelta(seconds=250), NOW) == (
        "deadline missed by 4 min 10 s (deadline 2026-12-01 02:00:00 UTC)"
    )
