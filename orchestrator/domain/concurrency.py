"""Adaptive per-link concurrency: how many of our transfers a link runs at once (a pure function).

A hill climb, as FTS's optimizer does: while the link runs as many transfers as its limit
allows and work waits, one more active is tried; if the link's throughput rose by at least
``min_gain`` the climb goes on, if not the limit steps back and stays there ``quiet``
decisions before trying again. Throughput that falls while the limit holds, or transfers that
mostly fail, lower it. The limit never leaves [1, ceiling].
"""

from __future__ import annotations

from dataclasses import dataclass

RAISED, HELD, LOWERED = 1, 0, -1


@dataclass(frozen=True)
class LinkConcurrency:
    """What the controller remembers of a link between decisions."""

    limit: int
    last_kbps: float | None = None  # the link's throughput at the last decision that measured
    last_step: int = HELD  # RAISED, HELD or LOWERED at that decision
    quiet: int = 0  # decisions still to wait before trying one more active


@dataclass(frozen=True)
class LinkMeasure:
    """The link now: its throughput, our transfers on it, and what happened since last time."""

    kbps: float  # what the link moved since the last decision, over the time between them
    actives: int  # our transfers running on it
    waiting: int  # our jobs queued for it
    failed: int = 0  # our transfers on it that ended failed since the last decision
    ended: int = 0  # our transfers on it that ended (any way) since the last decision


@dataclass(frozen=True)
class Decision:
    """The new state and, in words, why."""

    state: LinkConcurrency
    reason: str

    @property
    def step(self) -> int:
        """RAISED, HELD or LOWERED."""
        return self.state.last_step


def mbps(kbps: float) -> str:
    """A rate for people: "520 Mbps", "4.2 Mbps"."""
    value = kbps / 1000
    return f"{value:.0f} Mbps" if value >= 10 else f"{value:.1f} Mbps"


def decide(
    now: LinkConcurrency,
    seen: LinkMeasure,
    *,
    ceiling: int,
    min_gain: float = 0.1,
    quiet: int = 5,
) -> Decision:
    """The link's next limit from its last state and what it does now."""
    ceiling = max(1, ceiling)
    limit = min(max(1, now.limit), ceiling)

    def to(new: int, step: int, why: str, *, rest: int = 0, kbps: float | None = None) -> Decision:
        new = min(max(1, new), ceiling)
        if new == limit:
            step = HELD
        verb = {RAISED: "raised from", LOWERED: "lowered from", HELD: "held at"}[step]
        measured = seen.kbps if kbps is None else kbps
        return Decision(LinkConcurrency(new, measured, step, rest), f"{verb} {limit}: {why}")

    if seen.failed and 2 * seen.failed >= max(1, seen.ended):
        why = f"{seen.failed} of {seen.ended} transfers failed"
        return to(limit - 1, LOWERED, why, rest=quiet)
    if seen.actives < limit:  # the link does not use its limit: nothing to learn from it
        kept = LinkConcurrency(limit, now.last_kbps, now.last_step, now.quiet)
        return Decision(kept, f"held at {limit}: {seen.actives} active, fewer than it allows")
    room = seen.waiting > 0 and limit < ceiling
    if now.last_kbps is None:
        if room:
            return to(limit + 1, RAISED, f"first measure {mbps(seen.kbps)} with work waiting")
        return to(limit, HELD, f"throughput {mbps(seen.kbps)}")
    trend = f"throughput {mbps(now.last_kbps)} → {mbps(seen.kbps)}"
    rose = seen.kbps > now.last_kbps * (1 + min_gain)
    fell = seen.kbps < now.last_kbps * (1 - min_gain)
    if now.last_step == RAISED:
        if rose and room:
            return to(limit + 1, RAISED, trend)
        if rose:
            return to(limit, HELD, trend)
        return to(limit - 1, LOWERED, f"{trend}, one more active did not help", rest=quiet)
    if now.last_step == LOWERED:
        if fell:
            return to(limit + 1, RAISED, f"{trend} after lowering", rest=quiet)
        return to(limit, HELD, trend, rest=max(0, now.quiet - 1))
    if fell:
        return to(limit - 1, LOWERED, trend)
    if now.quiet > 0 or not room:
        return to(limit, HELD, trend, rest=max(0, now.quiet - 1))
    return to(limit + 1, RAISED, f"trying one more, {trend}")
