"""The sharing rule of simulated links (hstssim.shares), on its own: no nodes, no clock."""

from __future__ import annotations

import random

import pytest

from hstssim.shares import Demand, allocate

LINK = ("link", "node-a", "node-b")


def on_link(key, target, policy="fair", min_kbps=0):
    return Demand(key, (LINK,), target, min_kbps, policy)


def test_everyone_gets_its_target_while_the_sum_fits():
    rates = allocate([on_link("x", 30_000), on_link("y", 60_000)], {LINK: 100_000})
    assert rates == {"x": 30_000, "y": 60_000}


def test_equal_fair_transfers_split_a_full_link_evenly():
    rates = allocate([on_link("x", 80_000), on_link("y", 80_000)], {LINK: 100_000})
    assert rates == pytest.approx({"x": 50_000, "y": 50_000})


def test_fixed_first_then_fair_and_low_two_to_one():
    demands = [
        on_link("fixed", 40_000, "fixed"),
        on_link("fair", 100_000, "fair"),
        on_link("low", 100_000, "low"),
    ]
    rates = allocate(demands, {LINK: 100_000})
    assert rates == pytest.approx({"fixed": 40_000, "fair": 40_000, "low": 20_000})


def test_high_fair_low_weigh_four_two_one():
    demands = [on_link("high", 0, "high"), on_link("fair", 0), on_link("low", 0, "low")]
    rates = allocate(demands, {LINK: 70_000})
    assert rates == pytest.approx({"high": 40_000, "fair": 20_000, "low": 10_000})


def test_a_capped_transfer_leaves_the_rest_to_the_others():
    rates = allocate([on_link("small", 10_000), on_link("big", 0)], {LINK: 100_000})
    assert rates == pytest.approx({"small": 10_000, "big": 90_000})


def test_min_rate_is_honoured_while_it_fits_and_scaled_when_not():
    kept = allocate(
        [on_link("low", 0, "low", min_kbps=70_000), on_link("high", 0, "high")], {LINK: 100_000}
    )
    assert kept == pytest.approx({"low": 70_000, "high": 30_000})
    scaled = allocate(
        [on_link("x", 0, min_kbps=90_000), on_link("y", 0, min_kbps=110_000)], {LINK: 100_000}
    )
    assert scaled == pytest.approx({"x": 45_000, "y": 55_000})


def test_fixed_targets_overflowing_a_link_are_cut_in_proportion():
    demands = [on_link("x", 60_000, "fixed"), on_link("y", 90_000, "fixed"), on_link("z", 0)]
    rates = allocate(demands, {LINK: 100_000})
    assert rates == pytest.approx({"x": 40_000, "y": 60_000, "z": 0})


def test_node_capacity_binds_across_links():
    out_a = ("out", "node-a")
    demands = [
        Demand("ab", (LINK, out_a), 0),
        Demand("ac", (("link", "node-a", "node-c"), out_a), 0),
        Demand("cb", (LINK,), 0),
    ]
    rates = allocate(demands, {LINK: 100_000, out_a: 30_000})
    assert rates == pytest.approx({"ab": 15_000, "ac": 15_000, "cb": 85_000})


def test_nothing_configured_means_targets_or_unlimited():
    assert allocate([on_link("x", 0), on_link("y", 5_000, "low")], {}) == {"x": None, "y": 5_000}


def test_random_networks_never_overflow_and_leave_no_idle_capacity():
    rng = random.Random(13)
    policies = ("fixed", "high", "fair", "low")
    keys = [("link", "a", "b"), ("link", "b", "a"), ("out", "a"), ("in", "b"), ("in", "a")]
    for _ in range(300):
        capacities = {key: rng.choice([0, 1_000, 50_000, 100_000]) for key in keys}
        demands = [
            Demand(
                str(index),
                tuple(rng.sample(keys, rng.randint(1, 3))),
                rng.choice([0, 5_000, 40_000, 80_000]),
                rng.choice([0, 0, 10_000]),
                rng.choice(policies),
            )
            for index in range(rng.randint(1, 8))
        ]
        rates = allocate(demands, capacities)
        for key, capacity in capacities.items():
            used = sum(rates[d.key] or 0 for d in demands if key in d.constraints)
            assert used <= capacity + 1e-6, (key, capacity, rates)
        for demand in demands:
            rate = rates[demand.key]
            if rate is None:  # unlimited: nothing it crosses has a capacity
                assert not any(key in capacities for key in demand.constraints)
                continue
            assert rate >= -1e-9
            if demand.target_kbps:
                assert rate <= demand.target_kbps + 1e-6
            if demand.target_kbps and rate >= demand.target_kbps - 1e-6:
                continue
            # Below its target: one of its capacities is full (max-min: nothing left idle).
            full = [
                key
                for key in demand.constraints
                if key in capacities
                and sum(rates[d.key] or 0 for d in demands if key in d.constraints)
                >= capacities[key] - 1e-6
            ]
            assert full, (demand, rates, capacities)
