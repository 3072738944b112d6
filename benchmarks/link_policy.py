"""Live rate allocation on a link of fixed capacity: policy on against equal share.

The services run in this process against two hstssim nodes whose link node-a → node-b carries
a fixed capacity (hstssim ``links``: transfers on it share it FASP-like, equally when none
asks for a rate). The same jobs run twice on fresh nodes and a fresh SQLite database: once
with no budget (equal share, the behaviour without the policy) and once with a link budget
equal to the capacity, so the allocator gives deadline jobs the rate they need first (highest
priority first), shares the rest by priority, and pauses lower-priority work while
higher-priority deadlines need the whole link. Every deadline in the mix is feasible on the
link (the earliest-deadline-first test below), and some of them are missed on equal share.

Reported: the share of feasible deadlines met, the mean completion time of high-priority jobs
(priority > 0), total throughput (bytes over the time to the last completion) and the node
requests the policy adds. One table; the ratio column is policy on / equal share.

    python benchmarks/link_policy.py               # the figures in docs/benchmarks.md
    python benchmarks/link_policy.py --scale 2     # twice the bytes and the deadlines
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from sqlalchemy import select  # noqa: E402

from hstssim.cluster import SimCluster  # noqa: E402
from orchestrator.db.tables import JobRow  # noqa: E402
from orchestrator.domain.jobs import JobSpec  # noqa: E402
from orchestrator.services.conveyor.jobs import create_job  # noqa: E402
from orchestrator.services.conveyor.linkbudgets import set_budget  # noqa: E402
from tests.support.sim import SimAdmin, fast_configs, write_tree  # noqa: E402
from tests.support.stack import build_context, register_sim_node, settle  # noqa: E402

MB = 1_000_000
PUT = "PUT /ops/transfers/{id}"


@dataclass(frozen=True)
class Work:
    """One job of the mix: its priority, size and deadline (seconds after the start)."""

    name: str
    priority: int
    megabytes: float
    deadline: float | None


MIX = (
    Work("urgent-high", 50, 5, 7.0),
    Work("high", 50, 5, None),
    Work("daily-report", 0, 8, 14.0),
    Work("bulk-1", -20, 10, None),
    Work("bulk-2", -20, 10, None),
)


@dataclass
class Outcome:
    """What one run measured."""

    finished: dict[str, float] = field(default_factory=dict)  # seconds after the start
    met: dict[str, bool] = field(default_factory=dict)  # deadline jobs only
    puts: int = 0
    wall: float = 0.0


def feasible(mix: tuple[Work, ...], capacity_kbps: int, scale: float) -> bool:
    """Earliest deadline first on one link: every deadline's work fits before it."""
    bytes_by = 0.0
    for work in sorted((w for w in mix if w.deadline), key=lambda w: w.deadline or 0):
        bytes_by += work.megabytes * scale * MB
        if bytes_by * 8 / 1000 > capacity_kbps * (work.deadline or 0) * scale:
            return False
    return True


def run(policy: bool, capacity_kbps: int, scale: float, poll_interval: float) -> Outcome:
    """The mix on a fresh pair of nodes and database; with or without the link's budget."""
    outcome = Outcome()
    with tempfile.TemporaryDirectory() as tmp, SimCluster.start(fast_configs(Path(tmp))) as sims:
        a, b = sims["node-a"], sims["node-b"]
        body = {"links": [{"from": "node-a", "to": "node-b", "capacity_kbps": capacity_kbps}]}
        headers = {"X-Admin-Token": a.admin_token}
        httpx.put(f"{a.api_url}/admin/network", json=body, headers=headers).raise_for_status()
        ctx, tasks, engine = build_context(
            f"sqlite:///{tmp}/bench.db", Path(tmp) / "data", poll_interval=poll_interval
        )
        a_id = register_sim_node(ctx, a)
        register_sim_node(ctx, b)
        if policy:
            set_budget(ctx, "node-a", "node-b", capacity_kbps / 1000, by="bench")
        for work in MIX:
            size = int(work.megabytes * scale * MB)
            write_tree(a.config.docroot, {f"{work.name}/data.bin": os.urandom(size)})
        admin = SimAdmin(a)
        admin.reset_counters()
        start = ctx.now()
        ids: dict[str, str] = {}
        deadlines: dict[str, datetime] = {}
        for work in MIX:
            spec: dict[str, object] = {
                "source_node": "node-a",
                "source_paths": [work.name],
                "destination_node": "node-b",
                "destination_path": f"in/{work.name}",
                "priority": work.priority,
            }
            if work.deadline is not None:
                deadlines[work.name] = start + timedelta(seconds=work.deadline * scale)
                spec["deadline"] = deadlines[work.name].isoformat()
            ids[work.name] = create_job(ctx, JobSpec.model_validate(spec)).job.id
        began = time.monotonic()
        states = settle(ctx, tasks, [a_id], timeout=600)
        outcome.wall = time.monotonic() - began
        assert all(s == "completed" for s in states.values()), states
        with ctx.sessions() as session:
            rows = session.execute(select(JobRow.id, JobRow.finished_at)).all()
            ended = {row[0]: row[1] for row in rows}
        for name, job_id in ids.items():
            at = ended[job_id]
            assert at is not None
            outcome.finished[name] = (at - start).total_seconds()
            if name in deadlines:
                outcome.met[name] = at <= deadlines[name]
        outcome.puts = int(admin.counters()["requests"].get(PUT, 0))
        admin.close()
        ctx.clients.close()
        engine.dispose()
    return outcome


def table(on: Outcome, off: Outcome, scale: float) -> list[tuple[str, str, str, str]]:
    """The rows: measure, policy on, equal share, on / off."""
    total_bits = sum(w.megabytes for w in MIX) * scale * MB * 8
    high = [w.name for w in MIX if w.priority > 0]

    def mean_high(o: Outcome) -> float:
        return statistics.mean(o.finished[n] for n in high)

    def throughput(o: Outcome) -> float:
        return total_bits / max(o.finished.values()) / 1e6

    def ratio(x: float, y: float) -> str:
        return f"{x / y:.2f}" if y else ""

    rows = [
        (
            "feasible deadlines met",
            f"{sum(on.met.values())}/{len(on.met)}",
            f"{sum(off.met.values())}/{len(off.met)}",
            "",
        )
    ]
    for work in MIX:
        if work.deadline is not None:
            rows.append(
                (
                    f"  {work.name} end (s; deadline {work.deadline * scale:.0f})",
                    f"{on.finished[work.name]:.1f}",
                    f"{off.finished[work.name]:.1f}",
                    ratio(on.finished[work.name], off.finished[work.name]),
                )
            )
    rows += [
        (
            "high-priority mean completion (s)",
            f"{mean_high(on):.1f}",
            f"{mean_high(off):.1f}",
            ratio(mean_high(on), mean_high(off)),
        ),
        (
            "last completion (s)",
            f"{max(on.finished.values()):.1f}",
            f"{max(off.finished.values()):.1f}",
            ratio(max(on.finished.values()), max(off.finished.values())),
        ),
        (
            "total throughput (Mbps)",
            f"{throughput(on):.2f}",
            f"{throughput(off):.2f}",
            ratio(throughput(on), throughput(off)),
        ),
        (
            "rate changes sent (PUT) per job",
            f"{on.puts / len(MIX):.1f}",
            f"{off.puts / len(MIX):.1f}",
            "",
        ),
    ]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--capacity-kbps", type=int, default=16_000, help="the link's capacity")
    parser.add_argument("--scale", type=float, default=1.0, help="bytes and deadlines times this")
    parser.add_argument("--poll-interval", type=float, default=1.0, help="seconds")
    args = parser.parse_args()
    if not feasible(MIX, args.capacity_kbps, args.scale):
        sys.exit("the mix's deadlines are not feasible on this capacity: give more kbps")
    on = run(True, args.capacity_kbps, args.scale, args.poll_interval)
    off = run(False, args.capacity_kbps, args.scale, args.poll_interval)
    print(
        f"link node-a → node-b: {args.capacity_kbps / 1000:g} Mbps; {len(MIX)} jobs, "
        f"{sum(w.megabytes for w in MIX) * args.scale:g} MB; poll interval {args.poll_interval:g} s"
    )
    print("| measure | policy on (budget = capacity) | equal share (off) | on / off |")
    print("|---|---|---|---|")
    for row in table(on, off, args.scale):
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
