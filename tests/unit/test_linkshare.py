"""The link allocator as a pure function: within budget, deadlines first, priorities kept."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.domain.linkshare import (
    DEADLINE_ROOM,
    Claim,
    allocate,
    moved_enough,
    need_kbps,
    weight,
)

NOW = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)
MB = 1_000_000


def at(minutes: float) -> datetime:
    return NOW + timedelta(minutes=minutes)


def test_a_deadline_gets_what_it_needs_and_the_rest_is_shared_by_priority() -> None:
    # 300 MB in 60 s is 40 Mbps (42 with the margin) of a 100 Mbps link.
    claims = [
        Claim("urgent", 0, 300 * MB, NOW + timedelta(seconds=60)),
        Claim("high", 20, 1000 * MB, None),
        Claim("low", 0, 1000 * MB, None),
    ]
    shares = allocate(100_000, claims, NOW)
    assert shares["urgent"].need_kbps == 42_000
    left = 100_000 - 42_000
    # the rest: weights 1 (urgent), 2 (high), 1 (low)
    assert shares["high"].kbps == left // 2
    assert shares["low"].kbps == shares["urgent"].kbps - 42_000 == left // 4
    assert shares["urgent"].why == (
        "56.5 Mbps of the link's 100 Mbps: deadline 02:01 UTC needs 42.0 Mbps"
    )
    assert shares["low"].why == (
        "14.5 Mbps of the link's 100 Mbps: its share at priority 0 after deadlines took 42.0 Mbps"
    )


def test_lower_priority_work_is_paused_when_a_deadline_needs_the_whole_link() -> None:
    claims = [
        Claim("deadline", 50, 900 * MB, NOW + timedelta(seconds=60)),  # needs 126 Mbps
        Claim("bulk", 0, 10 * MB, None),
    ]
    shares = allocate(100_000, claims, NOW)
    assert shares["deadline"].kbps == 100_000
    assert shares["bulk"].paused
    assert shares["bulk"].why == (
        "paused: deadlines of higher-priority jobs need the whole link's 100 Mbps"
    )
    assert "more than higher-priority deadlines leave it" in shares["deadline"].why


def test_a_deadline_leaving_a_trickle_takes_it_and_the_rest_stays_paused() -> None:
    bulk = Claim("bulk", 0, 10 * MB, None)
    # 735 MB in 60 s needs 102.9 Mbps with the margin: 97 % of a 106 Mbps link
    nearly = [Claim("deadline", 50, 735 * MB, NOW + timedelta(seconds=60)), bulk]
    shares = allocate(106_000, nearly, NOW)
    assert (shares["deadline"].kbps, shares["bulk"].kbps) == (106_000, 0)
    assert shares["bulk"].why == (
        "paused: deadlines of higher-priority jobs need 103 Mbps of the link's 106 Mbps, "
        "too little is left to share"
    )
    # 90 % of the link leaves enough to share by priority (weights 5.7 and 1)
    room = [Claim("deadline", 50, 680 * MB, NOW + timedelta(seconds=60)), bulk]
    shares = allocate(106_000, room, NOW)
    assert shares["deadline"].need_kbps == 95_200
    assert shares["bulk"].kbps == int(10_800 / (1 + weight(50)))
    # a deadline held to its own target leaves its trickle to the others
    capped = [Claim("deadline", 50, 735 * MB, NOW + timedelta(seconds=60), 103_000), bulk]
    shares = allocate(106_000, capped, NOW)
    assert (shares["deadline"].kbps, shares["bulk"].kbps) == (103_000, 3_000)
    assert shares["bulk"].why.endswith("after deadlines took 103 Mbps")


def test_a_job_never_gets_more_than_its_own_target_and_a_passed_deadline_claims_nothing() -> None:
    claims = [
        Claim("capped", 0, 10 * MB, None, cap_kbps=5_000),
        Claim("late", 0, 10 * MB, NOW - timedelta(seconds=1)),
    ]
    shares = allocate(100_000, claims, NOW)
    assert shares["capped"].kbps == 5_000
    assert shares["late"].kbps == 95_000
    assert shares["late"].need_kbps is None


def test_moves_below_a_few_percent_are_not_sent() -> None:
    assert moved_enough(None, 10)
    assert not moved_enough(10_000, 10_400)
    assert moved_enough(10_000, 10_600)
    assert moved_enough(0, 10) and moved_enough(10, 0) and not moved_enough(0, 0)


claim_lists = st.lists(
    st.builds(
        Claim,
        key=st.uuids().map(str),
        priority=st.integers(-100, 100),
        bytes_left=st.one_of(st.none(), st.integers(0, 10**12)),
        deadline=st.one_of(st.none(), st.integers(-60, 7200).map(lambda s: at(s / 60))),
        cap_kbps=st.one_of(st.none(), st.integers(1, 10**6)),
    ),
    max_size=12,
    unique_by=lambda c: c.key,
)


@settings(max_examples=300, deadline=None)
@given(budget=st.integers(1, 10**7), claims=claim_lists)
def test_allocation_properties(budget: int, claims: list[Claim]) -> None:
    shares = allocate(budget, claims, NOW)
    assert set(shares) == {c.key for c in claims}
    # never over budget, never negative, never above a job's own target
    assert sum(s.kbps for s in shares.values()) <= budget
    for claim in claims:
        share = shares[claim.key]
        assert share.kbps >= 0
        assert claim.cap_kbps is None or share.kbps <= claim.cap_kbps
    needs = {c.key: need_kbps(c.bytes_left, c.deadline, NOW) for c in claims}
    deadline_claims = [c for c in claims if needs[c.key] is not None]
    for claim in deadline_claims:
        share = shares[claim.key]
        wanted = min(needs[claim.key] or 0, claim.cap_kbps or budget)
        if share.kbps < wanted:
            # a deadline short of its need: everything below it in urgency got nothing for
            # its own deadline, and the whole budget went to deadlines
            assert sum(shares[c.key].kbps for c in deadline_claims) >= budget - len(claims)
    # priorities respected: among uncapped claims without a deadline, a higher priority never
    # gets less than a lower one
    plain = [c for c in claims if needs[c.key] is None and c.cap_kbps is None]
    for high in plain:
        for low in plain:
            if high.priority > low.priority:
                assert shares[high.key].kbps >= shares[low.key].kbps
    # deadlines that leave under DEADLINE_ROOM of the link, one of them free to take more,
    # leave nothing to the others
    wanted_by_deadlines = sum(min(needs[c.key] or 0, c.cap_kbps or budget) for c in claims)
    if budget * (1 - DEADLINE_ROOM) < wanted_by_deadlines < budget and any(
        c.cap_kbps is None for c in deadline_claims
    ):
        assert all(shares[c.key].paused for c in claims if needs[c.key] is None)
    # no waste: unless every claim is capped, the budget is used (up to rounding)
    if claims and any(c.cap_kbps is None for c in claims):
        assert sum(s.kbps for s in shares.values()) >= budget - len(claims)


def test_weights_double_every_20_points() -> None:
    assert weight(0) == 1 and weight(20) == 2 and weight(-20) == 0.5


def test_a_deadline_under_a_millisecond_away_asks_a_rate_and_does_not_crash() -> None:
    now = datetime(2026, 11, 29, 9, 26, 40, 292250, tzinfo=UTC)
    soon = now + timedelta(microseconds=521)  # CI: a poll's clock 0.5 ms before the deadline
    need = need_kbps(153_808, soon, now)
    assert need is not None and need > 153_808 * 8 / 0.521
    assert need_kbps(153_808, now, now) is None  # at the deadline: passed, shares by priority
