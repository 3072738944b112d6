"""The adaptive link controller as a pure function: it climbs while throughput rises, steps
back when a raise does not help or throughput falls, lowers on failures, stays in bounds; and
the node session limit read from /info."""

from __future__ import annotations

import random

from orchestrator.domain.admission import node_full_reason, reported_session_limit
from orchestrator.domain.concurrency import (
    HELD,
    LOWERED,
    RAISED,
    LinkConcurrency,
    LinkMeasure,
    decide,
)


def run(
    limit: int, throughput: dict[int, float] | None, rounds: int, *, ceiling: int = 10
) -> list[int]:
    """The limits a link goes through when each active brings 100 Mbps up to 400 Mbps."""
    state = LinkConcurrency(limit)
    seen = []
    for _ in range(rounds):
        kbps = min(400_000.0, 100_000.0 * state.limit)
        if throughput is not None:
            kbps = throughput[state.limit]
        decision = decide(
            state, LinkMeasure(kbps, actives=state.limit, waiting=50), ceiling=ceiling, quiet=3
        )
        state = decision.state
        seen.append(state.limit)
    return seen


def test_it_rises_while_throughput_rises_then_settles_where_more_actives_stop_helping() -> None:
    limits = run(1, None, 20)
    assert limits[:4] == [2, 3, 4, 5]  # each raise brought 100 Mbps more, until 4
    assert limits[4] == 4  # the fifth active brought nothing: back to 4
    assert set(limits[4:]) <= {4, 5}  # and only an occasional probe beyond
    assert limits[4:].count(4) >= 12


def test_the_reason_names_the_step_and_the_throughput() -> None:
    state = LinkConcurrency(3, last_kbps=410_000.0, last_step=RAISED)
    decision = decide(state, LinkMeasure(520_000.0, actives=3, waiting=5), ceiling=10)
    assert decision.state.limit == 4 and decision.step == RAISED
    assert decision.reason == "raised from 3: throughput 410 Mbps → 520 Mbps"


def test_it_falls_back_when_throughput_drops() -> None:
    state = LinkConcurrency(6, last_kbps=500_000.0, last_step=HELD)
    decision = decide(state, LinkMeasure(300_000.0, actives=6, waiting=5), ceiling=10)
    assert (decision.state.limit, decision.step) == (5, LOWERED)
    assert decision.reason == "lowered from 6: throughput 500 Mbps → 300 Mbps"
    # lowering made it worse still: the active comes back
    again = decide(decision.state, LinkMeasure(200_000.0, actives=5, waiting=5), ceiling=10)
    assert (again.state.limit, again.step) == (6, RAISED)


def test_a_raise_that_did_not_help_is_undone_and_not_retried_at_once() -> None:
    state = LinkConcurrency(4, last_kbps=400_000.0, last_step=RAISED)
    back = decide(state, LinkMeasure(401_000.0, actives=4, waiting=9), ceiling=10, quiet=2)
    assert (back.state.limit, back.step, back.state.quiet) == (3, LOWERED, 2)
    assert back.reason.endswith("one more active did not help")
    steps = [back.state]
    for _ in range(3):
        steps.append(
            decide(steps[-1], LinkMeasure(400_000.0, actives=3, waiting=9), ceiling=10).state
        )
    assert [s.limit for s in steps] == [3, 3, 3, 4]  # quiet for two decisions, then a probe


def test_failures_lower_it() -> None:
    state = LinkConcurrency(5, last_kbps=400_000.0, last_step=HELD)
    seen = LinkMeasure(400_000.0, actives=5, waiting=3, failed=3, ended=4)
    decision = decide(state, seen, ceiling=10)
    assert (decision.state.limit, decision.step) == (4, LOWERED)
    assert decision.reason == "lowered from 5: 3 of 4 transfers failed"
    one_in_four = LinkMeasure(400_000.0, actives=5, waiting=3, failed=1, ended=4)
    assert decide(state, one_in_four, ceiling=10).step != LOWERED  # one failure in four: not


def test_an_idle_or_half_used_link_teaches_nothing() -> None:
    state = LinkConcurrency(4, last_kbps=400_000.0, last_step=RAISED, quiet=0)
    decision = decide(state, LinkMeasure(100_000.0, actives=1, waiting=0), ceiling=10)
    assert decision.state == state
    assert decision.reason == "held at 4: 1 active, fewer than it allows"


def test_it_does_not_raise_without_work_waiting() -> None:
    state = LinkConcurrency(2)
    decision = decide(state, LinkMeasure(200_000.0, actives=2, waiting=0), ceiling=10)
    assert (decision.state.limit, decision.step) == (2, HELD)


def test_it_never_leaves_its_bounds() -> None:
    rng = random.Random(13)
    for ceiling in (1, 2, 5, 20):
        state = LinkConcurrency(rng.randint(1, 30))
        for _ in range(300):
            seen = LinkMeasure(
                kbps=rng.uniform(0, 1e6),
                actives=rng.randint(0, 25),
                waiting=rng.randint(0, 3),
                failed=(failed := rng.randint(0, 2)),
                ended=failed + rng.randint(0, 2),
            )
            state = decide(state, seen, ceiling=ceiling).state
            assert 1 <= state.limit <= ceiling
    assert run(1, {n: 100_000.0 * n for n in range(1, 12)}, 30, ceiling=6)[-1] == 6
    assert run(1, {n: 500_000.0 / n for n in range(1, 12)}, 30)[-3:] == [1, 1, 1]


def test_a_node_states_its_session_limit_only_in_words_we_know() -> None:
    assert reported_session_limit({"transfer_manager_max_concurrent_sessions": "12"}) == 12
    assert reported_session_limit({}, {"max_concurrent_sessions": 8}) == 8
    assert reported_session_limit({"wss_enabled": False, "ssh_fingerprint": None}) is None
    assert reported_session_limit({"max_concurrent_sessions": True}) is None
    assert reported_session_limit({"max_concurrent_sessions": "many"}) is None
    assert reported_session_limit({"max_concurrent_sessions": 0}) is None


def test_a_full_node_says_whose_sessions_fill_it() -> None:
    assert node_full_reason("node-a", 8, 2, 10) == (
        "node-a runs 8 transfers for other clients; 2 of its 10 sessions are ours"
    )
    assert node_full_reason("node-a", 1, 1, 2) == (
        "node-a runs 1 transfer for other clients; 1 of its 2 sessions is ours"
    )
    assert node_full_reason("node-a", None, 4, 4) == (
        "node-a is at its session limit (4 of 4 sessions are ours; other clients' not counted)"
    )
