"""How transfers share limited links: FASP-like weighted max-min fair allocation (pure)."""

# The rule, per constraint (a node pair's link, a node's inbound or outbound capacity):
# 1. While the sum of the targets fits every constraint, each transfer gets its target rate.
# 2. Beyond that, "fixed" transfers are served first: each gets its target, or, if the fixed
#    targets alone overflow a constraint, the same fraction of its target as the others there.
# 3. What is left goes to the adaptive policies by weight, high : fair : low = 4 : 2 : 1.
#    Each gets max(min_rate_kbps, weight * level), capped at its target, where the level rises
#    until a constraint is full (progressive filling). min_rate_kbps is honoured while the
#    minimums fit; when they alone overflow a constraint, they are scaled down together.
# A target of 0 means "as fast as the links allow": unlimited when nothing constrains it.

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass

WEIGHTS = {"high": 4.0, "fair": 2.0, "low": 1.0}
FIXED = "fixed"
_EPSILON = 1e-9


@dataclass(frozen=True)
class Demand:
    """One transfer asking for bandwidth across some constraints."""

    key: str
    constraints: tuple[Hashable, ...]
    target_kbps: float
    min_kbps: float = 0.0
    policy: str = "fair"

    @property
    def ceiling(self) -> float:
        """Return the most it may get (its target; infinite when the target is 0)."""
        return self.target_kbps if self.target_kbps > 0 else math.inf


def allocate(
    demands: Iterable[Demand], capacities: dict[Hashable, float]
) -> dict[str, float | None]:
    """Return each demand's rate in kbps (None: unlimited, nothing constrains it)."""
    demands = list(demands)
    remaining = {key: max(0.0, float(value)) for key, value in capacities.items()}
    result: dict[str, float | None] = {}
    fixed = [d for d in demands if d.policy == FIXED and d.target_kbps > 0]
    adaptive = [d for d in demands if not (d.policy == FIXED and d.target_kbps > 0)]
    _fill(fixed, lambda d: d.target_kbps, lambda d: 0.0, remaining, result)
    _fill(adaptive, lambda d: WEIGHTS.get(d.policy, WEIGHTS["fair"]), _floor, remaining, result)
    return result


def _floor(demand: Demand) -> float:
    """Return the minimum rate a demand asks for, never above its target."""
    return min(float(demand.min_kbps), demand.ceiling)


def _fill(
    flows: list[Demand],
    weight: Callable[[Demand], float],
    floor: Callable[[Demand], float],
    remaining: dict[Hashable, float],
    result: dict[str, float | None],
) -> None:
    """Progressive filling of flows over the remaining capacities (which it consumes)."""

    def rate(demand: Demand, level: float) -> float:
        return min(max(floor(demand), weight(demand) * level), demand.ceiling)

    active = list(flows)
    while active:
        frozen = _binding(active, remaining, rate, weight, floor)
        if not frozen:  # no constraint binds: everyone gets its target (or unlimited)
            for demand in active:
                result[demand.key] = demand.target_kbps if demand.target_kbps > 0 else None
                _consume(remaining, demand, demand.target_kbps)
            return
        for demand in active:
            if demand.key in frozen:
                result[demand.key] = frozen[demand.key]
                _consume(remaining, demand, frozen[demand.key])
        active = [d for d in active if d.key not in frozen]


def _binding(
    active: list[Demand],
    remaining: dict[Hashable, float],
    rate: Callable[[Demand, float], float],
    weight: Callable[[Demand], float],
    floor: Callable[[Demand], float],
) -> dict[str, float]:
    """Return the rates of the flows that the first constraint to fill freezes ({}: none)."""
    best: tuple[float, float] = (math.inf, math.inf)
    frozen: dict[str, float] = {}
    for constraint in sorted(
        {c for d in active for c in d.constraints if c in remaining}, key=repr
    ):
        members = [d for d in active if constraint in d.constraints]
        capacity = remaining[constraint]
        floors = sum(rate(d, 0.0) for d in members)
        if floors >= capacity - _EPSILON:
            # The minimums alone overflow it: the tightest such constraint scales them first.
            scale = capacity / floors if floors > 0 else 0.0
            if (0.0, scale) < best:
                best, frozen = (0.0, scale), {d.key: rate(d, 0.0) * scale for d in members}
            continue
        level = _level(members, capacity, rate, weight, floor)
        if level == math.inf or level > best[0] + _EPSILON:
            continue
        rates = {d.key: rate(d, level) for d in members}
        if level < best[0] - _EPSILON:
            best, frozen = (level, 1.0), rates
        elif best[1] >= 1.0:  # a tie: rates depend on the level only, so both freeze
            frozen.update(rates)
    return frozen


def _consume(remaining: dict[Hashable, float], demand: Demand, kbps: float) -> None:
    """Take a demand's rate off every constraint it crosses."""
    for constraint in demand.constraints:
        if constraint in remaining:
            remaining[constraint] = max(0.0, remaining[constraint] - kbps)


def _level(
    members: list[Demand],
    capacity: float,
    rate: Callable[[Demand, float], float],
    weight: Callable[[Demand], float],
    floor: Callable[[Demand], float],
) -> float:
    """Return the lowest level at which members fill capacity (inf if they never do)."""
    # The sum of rates is piecewise linear in the level, bending where a member leaves its
    # floor or reaches its ceiling: find the segment where it crosses capacity, interpolate.
    bends = {0.0}
    for demand in members:
        bends.add(floor(demand) / weight(demand))
        if demand.ceiling < math.inf:
            bends.add(demand.ceiling / weight(demand))
    points = sorted(bends)

    def total(level: float) -> float:
        return sum(rate(d, level) for d in members)

    # The sum never falls as the level rises: bisect for the first bend where it fills.
    low, high = 0, len(points)
    while low < high:
        middle = (low + high) // 2
        if total(points[middle]) >= capacity:
            high = middle
        else:
            low = middle + 1
    if low == 0:
        return 0.0
    previous, used = points[low - 1], total(points[low - 1])
    if low < len(points):
        point, reached = points[low], total(points[low])
        return previous + (capacity - used) * (point - previous) / (reached - used)
    slope = sum(weight(d) for d in members if d.ceiling == math.inf)
    if slope <= 0:
        return math.inf
    return previous + (capacity - used) / slope
